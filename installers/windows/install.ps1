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

  TLS: a collector install runs `sealtrail-collector init` once, when its PKI
  (<data_dir>\pki) is absent, and prints the CA fingerprint and the admin API key. An
  agent install with -Token runs `sealtrail-agent enroll` once, when
  <data_dir>\enrollment.json is absent; an agent that is neither enrolled nor configured
  `insecure: true` is registered but not started. Both run as this administrator; the
  files they write inherit the data directory's ACL (SYSTEM, Administrators, and
  LocalService for the collector's).

.EXAMPLE
  .\install.ps1 -Component collector -San collector.example.net
.EXAMPLE
  .\install.ps1 -Component agent -Collector collector.example.net:7701 -Token st1.... -CaFingerprint sha256:...
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
  # Agent: enroll with this one-time token (from `sealtrail-collector token create`) before starting.
  [ValidatePattern('^[A-Za-z0-9._-]+$')]
  [string] $Token,
  # Agent: pin the collector's CA by its fingerprint (printed by `sealtrail-collector init`).
  [ValidatePattern('^sha256:[0-9A-Fa-f:]+$')]
  [string] $CaFingerprint,
  # Agent: the collector's CA certificate file, instead of -CaFingerprint.
  [string] $Ca,
  # Collector: more DNS names or IP addresses for the server certificate that init creates.
  [ValidatePattern('^[A-Za-z0-9.:_-]+$')]
  [string[]] $San,
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

# The bundle's own CLI, run on the bundled node (as the launchers and the services do); its
# output goes to the console, not into a caller's return value. Sets $LASTEXITCODE.
function Invoke-Cli([string] $Name, [string[]] $CliArgs) {
  & (Join-Path $Prefix 'runtime\node.exe') (Join-Path $Prefix "lib\node_modules\@sealtrail\$Name\bin\sealtrail-$Name.js") @CliArgs | Out-Host
}

# What the installer acts on (data_dir, pki_dir, address, insecure), read from a config by the
# bundle's own config loader.
function Get-Settings([string] $Name) {
  $conf = Join-Path $DataRoot "$Name.yaml"
  $lines = & (Join-Path $Prefix 'runtime\node.exe') (Join-Path $Prefix 'share\installer\settings.mjs') $Name $conf
  if ($LASTEXITCODE -ne 0) { throw "cannot read $conf (see above)" }
  $settings = @{}
  foreach ($line in @($lines)) {
    $k, $v = $line -split '=', 2
    $settings[$k] = $v
  }
  return $settings
}

# sealtrail-collector init, once: only when none of the files it writes exist. Its output
# (CA fingerprint, admin API key) is shown here and never again.
function Initialize-Pki {
  $pki = (Get-Settings 'collector')['pki_dir']
  foreach ($f in @('ca.key', 'server.key', 'api-keys', 'token.secret')) {
    if (Test-Path (Join-Path $pki $f)) {
      if ($San) { Write-Warning "$pki exists and is kept; -San does not change its server certificate" }
      return
    }
  }
  Say "creating the collector's CA, server certificate and admin API key in $pki"
  $cliArgs = @('init', '--dir', $pki)
  foreach ($name in @($San)) { if ($name) { $cliArgs += @('--san', $name) } }
  Invoke-Cli 'collector' $cliArgs
  if ($LASTEXITCODE -ne 0) { throw "sealtrail-collector init failed (see above)" }
  Say 'store the admin API key above now: only its hash is kept'
}

# sealtrail-agent enroll, once: with -Token, when enrollment.json is absent. It dials the
# config's collector.address. Returns whether the agent can run (enrolled, or insecure).
function Register-Agent {
  $settings = Get-Settings 'agent'
  $enrollment = Join-Path $settings['data_dir'] 'enrollment.json'
  if (Test-Path $enrollment) {
    if ($Token) { Say "$enrollment exists: already enrolled, -Token not used" }
    return $true
  }
  if ($Token) {
    $cliArgs = @('enroll', '--config', (Join-Path $DataRoot 'agent.yaml'), '--collector', $settings['address'], '--token', $Token)
    if ($Ca) { $cliArgs += @('--ca', $Ca) } else { $cliArgs += @('--ca-fingerprint', $CaFingerprint) }
    Say "enrolling with the collector at $($settings['address'])"
    Invoke-Cli 'agent' $cliArgs
    if ($LASTEXITCODE -ne 0) {
      throw 'enrollment failed (see above); the agent is registered but not started: fix it and run install.ps1 again with a new token'
    }
    return $true
  }
  return ($settings['insecure'] -eq 'true')
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
if ($Ca -and $CaFingerprint) { throw 'give -Ca or -CaFingerprint, not both' }
if ($Token -and -not ($Ca -or $CaFingerprint)) {
  throw "-Token needs the collector's CA: -CaFingerprint sha256:... (printed by sealtrail-collector init) or -Ca FILE"
}
if (($Ca -or $CaFingerprint) -and -not $Token) { throw '-Ca and -CaFingerprint go with -Token' }
if ($Ca -and -not (Test-Path -PathType Leaf $Ca)) { throw "-Ca ${Ca}: no such file" }
if (($Token -or $Collector) -and $Component -notcontains 'agent') { throw '-Collector and -Token go with -Component agent' }
if ($San -and $Component -notcontains 'collector') { throw '-San goes with -Component collector' }
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
    Initialize-Pki
  }
  Install-SealtrailService $c
}
# Collector first, so that an agent on this host can enroll with it.
foreach ($c in @('collector', 'agent')) {
  $listed = $Component -contains $c
  $stopped = $restart -contains $c
  $canRun = $true
  if ($c -eq 'agent' -and $listed) {
    $canRun = Register-Agent
    if (-not $canRun -and -not $stopped) {
      Say 'sealtrail-agent is not enrolled with a collector, and cannot run until it is (not started).'
      Say 'On the collector host: sealtrail-collector.cmd token create; then here, with that token'
      Say 'and the CA fingerprint sealtrail-collector init printed:'
      Say '  .\install.ps1 -Component agent -Token TOKEN -CaFingerprint sha256:...'
    }
  }
  # Started again after the upgrade: it ran before. Otherwise as asked, once it can run.
  if ($stopped -or ($listed -and -not $NoStart -and $canRun)) {
    if ((Get-SealtrailService $c).Status -ne 'Running') {
      Start-Service -Name "sealtrail-$c"
      Say "started sealtrail-$c (logs: $DataRoot\logs)"
    }
  }
}
