@echo off
rem Starts a Sealtrail binary on the Node.js runtime bundled beside it, so the
rem host needs no Node of its own. Installed as bin\sealtrail-agent.cmd and
rem bin\sealtrail-collector.cmd: the file's own name picks the binary.
setlocal
set "SEALTRAIL_ROOT=%~dp0.."
set "SEALTRAIL_NAME=%~n0"
set "SEALTRAIL_COMPONENT=%SEALTRAIL_NAME:sealtrail-=%"
"%SEALTRAIL_ROOT%\runtime\node.exe" "%SEALTRAIL_ROOT%\lib\node_modules\@sealtrail\%SEALTRAIL_COMPONENT%\bin\%SEALTRAIL_NAME%.js" %*
exit /b %ERRORLEVEL%
