#Requires -Version 5.1
#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Installs, upgrades or removes the Sealtrail agent and/or collector as Windows services.

.DESCRIPTION
  Run from the extracted bundle (sealtrail-VERSION-win32-x64). Idempotent: running it
  again changes nothing that is already right and never overwrites a config you edited.

  Layout: the bundle in "$env:ProgramFiles\Sealtrail", configs and data in
  "$env:ProgramData\Sealtrail" (agent.yaml, collector.yaml, agent\, collector\, logs\),
  readable only by SYSTEM, Administrators and the collector's service account.
  The services are wrapped by WinSW (bin\sealtrail-<name>-service.exe with its .xml).
  The agent runs as LocalSystem (it reads other accounts' logs and files); the
  collector runs as NT AUTHORITY\LocalService, with write access to its own data only.

.EXAMPLE
  .\install.ps1 -Component agent -Collector collector.example.net:7701
.EXAMPLE
  .\install.ps1 -Uninstall -Component agent,collector -Purge
#>
[CmdletBinding()]
param(
  [ValidateSet('agent', 'collector')]
  [string[]] $Component,
  # The agent's collector address (HOST:PORT), written into a new agent.yaml; an existing one is kept.
  [ValidatePattern('^[A-Za-z0-9.\[\]:_-]+:[0-9]+$')]
  [string] $Collector,
  [switch] $NoStart,
  [switch] $Uninstall,
  # With -Uninstall: also delete the data and the config.
  [switch] $Purge
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$Bundle = $PSScriptRoot
$Prefix = Join-Path $env:ProgramFiles 'Sealtrail'
$DataRoot = Join-Path $env:ProgramData 'Sealtrail'
$Parts = @('BUILD.json', 'bin', 'runtime', 'lib', 'share')
$AllComponents = @('agent', 'collector')
$script:BundleChanged = $true

function Say([string] $Message) { Write-Host "install.ps1: $Message" }

function Get-SealtrailService([string] $Name) {
  Get-Service -Name "sealtrail-$Name" -ErrorAction SilentlyContinue
}

function Get-InstalledComponents {
  @($AllComponents | Where-Object { Get-SealtrailService $_ })
}

function Invoke-Wrapper([string] $Name, [string] $Verb) {
  $exe = Join-Path $Prefix "bin\sealtrail-$Name-service.exe"
  & $exe $Verb
  if ($LASTEXITCODE -ne 0) { throw "sealtrail-$Name-service.exe $Verb exited with $LASTEXITCODE" }
}

# Owner-only ACLs: SYSTEM and Administrators full control, inheritance cut.
function Protect-Directory([string] $Path, [string[]] $ExtraModify = @()) {
  New-Item -ItemType Directory -Force -Path $Path | Out-Null
  $grants = @('*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F')
  foreach ($who in $ExtraModify) { $grants += "${who}:(OI)(CI)M" }
  $icaclsArgs = @($Path, '/inheritance:r')
  foreach ($g in $grants) { $icaclsArgs += @('/grant:r', $g) }
  & icacls.exe @icaclsArgs | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls $Path exited with $LASTEXITCODE" }
}

function Install-Bundle {
  if (-not (Test-Path (Join-Path $Bundle 'BUILD.json')) -or -not (Test-Path (Join-Path $Bundle 'runtime\node.exe'))) {
    throw "$Bundle is not an unpacked Sealtrail bundle (run install.ps1 from the extracted archive)"
  }
  $current = Join-Path $Prefix 'BUILD.json'
  if ((Test-Path $current) -and ((Get-Content -Raw $current) -eq (Get-Content -Raw (Join-Path $Bundle 'BUILD.json')))) {
    Say "$Prefix already holds this build"
    $script:BundleChanged = $false
    return @()
  }
  # Stop what runs from the old files; say what to start again.
  $restart = @()
  foreach ($c in $AllComponents) {
    $svc = Get-SealtrailService $c
    if ($svc -and $svc.Status -eq 'Running') {
      Stop-Service -Name "sealtrail-$c"
      $restart += $c
    }
  }
  $staging = "$Prefix.new"
  if (Test-Path $staging) { Remove-Item -Recurse -Force $staging }
  New-Item -ItemType Directory -Force -Path $staging | Out-Null
  foreach ($p in $Parts) { Copy-Item -Recurse -Force (Join-Path $Bundle $p) $staging }
  if (Test-Path $Prefix) { Remove-Item -Recurse -Force $Prefix }
  Move-Item $staging $Prefix
  $script:BundleChanged = $true
  Say "installed $((Get-Content -Raw $current | ConvertFrom-Json).version) in $Prefix"
  return $restart
}

function Install-Config([string] $Name) {
  $conf = Join-Path $DataRoot "$Name.yaml"
  if (Test-Path $conf) {
    if ($Name -eq 'agent' -and $Collector -and -not (Select-String -Quiet -SimpleMatch "address: $Collector" $conf)) {
      Write-Warning "$conf exists and is kept; set collector.address to $Collector there yourself"
    }
  } else {
    $text = Get-Content -Raw (Join-Path $Prefix "share\config\$Name.yaml")
    if ($Name -eq 'agent' -and $Collector) {
      $text = $text -replace '(?m)^  address: .*$', "  address: $Collector"
    }
    [System.IO.File]::WriteAllText($conf, $text)
    Say "created $conf from the sample"
  }
  & (Join-Path $Prefix 'runtime\node.exe') (Join-Path $Prefix "lib\node_modules\@sealtrail\$Name\bin\sealtrail-$Name.js") check-config $conf
  if ($LASTEXITCODE -ne 0) { throw "$conf is not valid (see above); the service was not started" }
}

function Install-SealtrailService([string] $Name) {
  $svc = Get-SealtrailService $Name
  if ($svc -and -not $script:BundleChanged) { return }
  if ($svc) {
    # WinSW 1.x has no "refresh": re-register so that a changed definition takes effect.
    if ($svc.Status -ne 'Stopped') { Stop-Service -Name "sealtrail-$Name" }
    Invoke-Wrapper $Name 'uninstall'
  }
  Invoke-Wrapper $Name 'install'
  if ($Name -eq 'collector') {
    # LocalService has no password; Win32_Service.Change takes an empty one (sc.exe would need
    # an empty argument, which Windows PowerShell drops).
    $cim = Get-CimInstance -ClassName Win32_Service -Filter "Name='sealtrail-collector'"
    $r = Invoke-CimMethod -InputObject $cim -MethodName Change -Arguments @{
      StartName = 'NT AUTHORITY\LocalService'
      StartPassword = ''
    }
    if ($r.ReturnValue -ne 0) { throw "could not set sealtrail-collector to run as LocalService ($($r.ReturnValue))" }
  }
}

if ($Uninstall) {
  if (-not $Component) { $Component = Get-InstalledComponents }
  foreach ($c in $Component) {
    if (Get-SealtrailService $c) {
      Stop-Service -Name "sealtrail-$c" -ErrorAction SilentlyContinue
      Invoke-Wrapper $c 'uninstall'
      Say "removed the sealtrail-$c service"
    }
    if ($Purge) {
      Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Join-Path $DataRoot $c), (Join-Path $DataRoot "$c.yaml")
      Say "purged $DataRoot\$c and $c.yaml"
    }
  }
  if (@(Get-InstalledComponents).Count -eq 0) {
    if (Test-Path $Prefix) { Remove-Item -Recurse -Force $Prefix }
    Say "removed $Prefix"
    if ($Purge) {
      Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $DataRoot
    } else {
      Say "kept $DataRoot (-Purge deletes it)"
    }
  }
  exit 0
}

if (-not $Component) { $Component = @('agent') }
$restart = @(Install-Bundle)
# LocalService is S-1-5-19; it gets modify on the collector's data only, read on its config.
Protect-Directory $DataRoot
Protect-Directory (Join-Path $DataRoot 'logs')
foreach ($c in $Component) {
  if ($c -eq 'collector') {
    Protect-Directory (Join-Path $DataRoot 'collector') @('*S-1-5-19')
  } else {
    Protect-Directory (Join-Path $DataRoot $c)
  }
  Install-Config $c
  if ($c -eq 'collector') {
    & icacls.exe (Join-Path $DataRoot 'collector.yaml') /grant:r '*S-1-5-19:R' | Out-Null
    & icacls.exe $DataRoot /grant '*S-1-5-19:(RX)' | Out-Null
    & icacls.exe (Join-Path $DataRoot 'logs') /grant '*S-1-5-19:(OI)(CI)M' | Out-Null
  }
  Install-SealtrailService $c
}
foreach ($c in @($Component) + $restart | Select-Object -Unique) {
  if ($NoStart -and $Component -contains $c -and $restart -notcontains $c) { continue }
  Start-Service -Name "sealtrail-$c"
  Say "started sealtrail-$c (logs: $DataRoot\logs)"
}
