@echo off
rem Starts a Sealtrail binary on the Node.js runtime bundled beside it, so the
rem host needs no Node of its own. Installed as bin\sealtrail-agent.cmd and
rem bin\sealtrail-collector.cmd: the file's own name picks the binary.
setlocal
rem The agent's young generation is capped (bench/README.md, "sources"), as in launcher.sh.
set "SEALTRAIL_NODE_FLAGS="
if /i "%~n0"=="sealtrail-agent" set "SEALTRAIL_NODE_FLAGS=--max-semi-space-size=8"
set "SEALTRAIL_ROOT=%~dp0.."
set "SEALTRAIL_NAME=%~n0"
set "SEALTRAIL_COMPONENT=%SEALTRAIL_NAME:sealtrail-=%"
"%SEALTRAIL_ROOT%\runtime\node.exe" %SEALTRAIL_NODE_FLAGS% "%SEALTRAIL_ROOT%\lib\node_modules\@sealtrail\%SEALTRAIL_COMPONENT%\bin\%SEALTRAIL_NAME%.js" %*
exit /b %ERRORLEVEL%
