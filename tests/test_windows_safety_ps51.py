"""Both PowerShell scripts run under Windows PowerShell 5.1 (issue 14.6), the ``powershell.exe`` every
Windows 11 has, as well as PowerShell 7.

Neither PowerShell can be installed here, so the scripts are read with tree-sitter's PowerShell grammar
(the ``tree-sitter-language-pack`` wheel of the dev extra) and the parse tree is searched for what 5.1
does not have: the 7-only operators (``??``, ``??=``, ``?:``, ``?.``, ``&&``/``||`` chains), 7-only
parameters of built-in cmdlets (``ForEach-Object -Parallel``, ``ConvertFrom-Json -AsHashtable``,
``Invoke-WebRequest -SkipHttpErrorCheck``, ``Join-Path`` with more than one child path...), 7-only
cmdlets, encodings and automatic variables (``$IsWindows`` is undefined in 5.1, an error under
``Set-StrictMode -Version Latest``). 5.1 also reads a script without a BOM in the ANSI code page, so
the scripts must be plain ASCII. Each rule is proven by a snippet it must catch and one it must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.powershell import PS_SCRIPTS, node_text, ps_parser, walk

pytestmark = pytest.mark.unit

# cmdlet (lower case) -> parameters PowerShell 5.1's version of it does not have
PS7_PARAMETERS: dict[str, set[str]] = {
    "foreach-object": {"-parallel", "-throttlelimit", "-asjob", "-timeoutseconds", "-usenewrunspace"},
    "convertfrom-json": {"-ashashtable", "-depth", "-noenumerate", "-dateKind".lower()},
    "convertto-json": {"-escapehandling", "-asarray"},
    "invoke-webrequest": {"-skiphttperrorcheck", "-statuscodevariable", "-responseheadersvariable",
                          "-skipcertificatecheck", "-authentication", "-token", "-form", "-resume", "-httpversion",
                          "-maximumretrycount", "-retryintervalsec", "-skipheadervalidation", "-sslprotocol",
                          "-preservehttpmethodonredirect", "-unixsocket", "-connectiontimeoutseconds"},
    "join-path": {"-additionalchildpath"},
    "split-path": {"-leafbase", "-extension"},
    "get-content": {"-asbytestream"},
    "set-content": {"-asbytestream"},
    "add-content": {"-asbytestream"},
    "test-connection": {"-targetname", "-ping", "-tcpport", "-traceroute", "-mtusize"},
    "select-string": {"-raw", "-noemphasis", "-culture"},
    "get-childitem": {"-followsymlink"},
    "start-process": {"-environment"},
    "get-date": {"-asutc", "-unixtimeseconds"},
    "out-file": {"-asbytestream"},
}
PS7_PARAMETERS["invoke-restmethod"] = PS7_PARAMETERS["invoke-webrequest"]
PS7_ALIASES = {"iwr": "invoke-webrequest", "irm": "invoke-restmethod", "%": "foreach-object", "foreach": "foreach-object",
               "gc": "get-content", "sls": "select-string", "gci": "get-childitem", "ls": "get-childitem",
               "dir": "get-childitem", "start": "start-process", "saps": "start-process"}
PS7_CMDLETS = {"test-json", "get-error", "join-string", "convertfrom-markdown", "show-markdown", "get-uptime",
               "remove-alias", "remove-service", "get-markdownoption", "set-markdownoption", "get-pssubsystem",
               "enable-experimentalfeature", "disable-experimentalfeature", "get-experimentalfeature"}
PS7_ENCODINGS = {"utf8nobom", "utf8bom", "ansi", "latin1"}  # 5.1 has utf8 (with BOM), ascii, unicode, oem...
PS7_VARIABLES = {"$iswindows", "$islinux", "$ismacos", "$iscoreclr", "$psstyle",
                 "$psnativecommandargumentpassing", "$psnativecommanduseerroractionpreference"}
ENCODING_PARAMETERS = {"-encoding"}


def _command_parts(source: bytes, command) -> tuple[str, list]:
    """(lower-case command name, the command's element nodes without separators)."""
    name_node = next((c for c in command.children if c.type in ("command_name", "foreach-object")), None)
    name = node_text(source, name_node).lower() if name_node is not None else ""
    elements = []
    for child in command.children:
        if child.type == "command_elements":
            elements += [e for e in child.children if e.type != "command_argument_sep"]
        elif child.type not in ("command_name", "foreach-object", "command_argument_sep"):
            elements.append(child)
    return PS7_ALIASES.get(name, name), elements


def _error_finding(text: str) -> str:
    if "??" in text:
        return "null-coalescing operator ?? / ??= (PowerShell 7 only)"
    if "?." in text or "?[" in text:
        return "null-conditional operator ?. / ?[] (PowerShell 7 only)"
    if "?" in text:
        return "ternary operator ? : (PowerShell 7 only)"
    if "-parallel" in text.lower():
        return "ForEach-Object -Parallel (PowerShell 7 only)"
    return f"syntax error near {text.strip()[:30]!r}"


def ps7_only_constructs(source: bytes) -> list[str]:
    """What Windows PowerShell 5.1 cannot run, as 'line N: what' (empty when 5.1-safe)."""
    findings: list[str] = []
    try:
        source.decode("ascii")
    except UnicodeDecodeError as exc:
        if not source.startswith(b"\xef\xbb\xbf"):
            line = source[: exc.start].count(b"\n") + 1
            findings.append(f"line {line}: non-ASCII text without a UTF-8 BOM (5.1 reads it as ANSI)")
    tree = ps_parser().parse(source)
    for node in walk(tree.root_node):
        line = node.start_point[0] + 1
        text = node_text(source, node)
        if node.type == "ERROR":
            if not any(p.type == "ERROR" for p in _ancestors(node)):
                findings.append(f"line {line}: {_error_finding(text)}")
        elif node.type in ("&&", "||"):
            findings.append(f"line {line}: pipeline chain operator {node.type} (PowerShell 7 only)")
        elif node.type == "variable" and text.lower() in PS7_VARIABLES:
            findings.append(f"line {line}: automatic variable {text} does not exist in 5.1")
        elif node.type in ("command", "foreach_command"):
            findings += [f"line {line}: {f}" for f in _command_findings(source, node)]
    first = _first_statement_text(source)
    if first.lower().startswith("#requires") and ("-version 7" in first.lower() or "core" in first.lower()):
        findings.append("line 1: #requires PowerShell 7 / Core")
    return findings


def _ancestors(node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def _first_statement_text(source: bytes) -> str:
    for raw in source.decode("utf-8", "replace").splitlines():
        if raw.strip():
            return raw.strip()
    return ""


def _command_findings(source: bytes, command) -> list[str]:
    name, elements = _command_parts(source, command)
    out = []
    if name in PS7_CMDLETS:
        out.append(f"cmdlet {name} does not exist in 5.1")
    params = [e for e in elements if e.type == "command_parameter"]
    for param in params:
        flag = node_text(source, param).split(":")[0].lower()
        if flag in PS7_PARAMETERS.get(name, set()):
            out.append(f"{name} {flag} (PowerShell 7 only)")
    for i, element in enumerate(elements):
        if element.type == "command_parameter" and node_text(source, element).split(":")[0].lower() in ENCODING_PARAMETERS:
            value = node_text(source, elements[i + 1]).strip("'\"").lower() if i + 1 < len(elements) else ""
            if value in PS7_ENCODINGS:
                out.append(f"-Encoding {value} (PowerShell 7 only; 5.1's utf8 writes a BOM)")
    if name == "join-path":
        positional, skip_next = 0, False
        for element in elements:
            if element.type == "command_parameter":
                skip_next = node_text(source, element).lower() not in ("-resolve",) and ":" not in node_text(source, element)
                continue
            if skip_next:
                skip_next = False
                continue
            positional += 1
        if positional > 2:
            out.append("Join-Path with more than one child path (PowerShell 7 only: nest Join-Path calls in 5.1)")
    return out


@pytest.mark.parametrize("script", PS_SCRIPTS, ids=lambda p: p.name)
def test_script_runs_under_windows_powershell_51(script: Path) -> None:
    findings = ps7_only_constructs(script.read_bytes())
    assert not findings, f"{script.name} uses what Windows PowerShell 5.1 cannot run:\n" + "\n".join(findings)


SEVEN_ONLY = {
    "null-coalescing": '$a = $b ?? "x"\n',
    "null-coalescing assignment": "$a ??= 1\n",
    "ternary": "$a = $c ? 1 : 2\n",
    "null-conditional": "$x = ${a}?.b\n",
    "&& chain": "git status && Write-Host ok\n",
    "|| chain": "git status || exit 1\n",
    "ForEach-Object -Parallel": "1..3 | ForEach-Object -Parallel { $_ }\n",
    "ForEach-Object -ThrottleLimit": "1..3 | ForEach-Object -ThrottleLimit 2 -Process { $_ }\n",
    "ConvertFrom-Json -AsHashtable": "$x = $t | ConvertFrom-Json -AsHashtable\n",
    "Invoke-WebRequest -SkipHttpErrorCheck": "$r = Invoke-WebRequest -Uri $u -SkipHttpErrorCheck\n",
    "irm -SkipHttpErrorCheck (alias)": "$r = irm $u -SkipHttpErrorCheck\n",
    "Invoke-RestMethod -StatusCodeVariable": "$r = Invoke-RestMethod $u -StatusCodeVariable code\n",
    "Join-Path three positional": 'Join-Path $a "b" "c"\n',
    "Join-Path -AdditionalChildPath": 'Join-Path -Path $a -ChildPath "b" -AdditionalChildPath "c"\n',
    "Split-Path -LeafBase": "$n = Split-Path $p -LeafBase\n",
    "Get-Content -AsByteStream": "$b = Get-Content $p -AsByteStream\n",
    "Set-Content -Encoding utf8NoBOM": "Set-Content -Path $p -Value $v -Encoding utf8NoBOM\n",
    "Out-File -Encoding utf8NoBOM": "$v | Out-File $p -Encoding 'utf8NoBOM'\n",
    "$IsWindows": "if ($IsWindows) { Write-Host w }\n",
    "$PSStyle": "$PSStyle.OutputRendering = 'PlainText'\n",
    "Test-Json": "Test-Json -Json $t\n",
    "Get-Error": "Get-Error\n",
    "#requires -Version 7": "#requires -Version 7\nWrite-Host x\n",
    "non-ASCII without BOM": "Write-Host 'done \u2192 next'\n",
}
FIVE_ONE_OK = {
    "if as an expression": '$tag = if ($Cuda) { "a" } else { "b" }\n',
    "Join-Path two": 'Join-Path $Root ".venv"\n',
    "Join-Path named": 'Join-Path -Path $Root -ChildPath ".venv" -Resolve\n',
    "nested Join-Path": 'Join-Path (Join-Path $Root ".venv") "Scripts"\n',
    "ForEach-Object": "1..3 | ForEach-Object { $_ }\n",
    "ConvertFrom-Json": "$x = $t | ConvertFrom-Json\n",
    "Invoke-WebRequest": "$r = Invoke-WebRequest -Uri $u -UseBasicParsing\n",
    "-Encoding utf8": "Set-Content -Path $p -Value $v -Encoding utf8\n",
    "-and / -or": "if ($a -and -not $b -or $c) { exit 1 }\n",
    "$LASTEXITCODE check": "& $py -c 'print(1)'\nif ($LASTEXITCODE -ne 0) { throw 'x' }\n",
    "$PSVersionTable": "Write-Host $PSVersionTable.PSVersion\n",
    "UTF-8 BOM with non-ASCII": "\ufeffWrite-Host 'caf\u00e9'\n",
}


@pytest.mark.parametrize("name", list(SEVEN_ONLY))
def test_checker_catches_powershell_7_only(name: str) -> None:
    assert ps7_only_constructs(SEVEN_ONLY[name].encode("utf-8")), f"{name} was not caught"


@pytest.mark.parametrize("name", list(FIVE_ONE_OK))
def test_checker_passes_windows_powershell_51_syntax(name: str) -> None:
    assert ps7_only_constructs(FIVE_ONE_OK[name].encode("utf-8")) == []


def test_readme_shows_the_command_a_fresh_windows_11_runs() -> None:
    """Fresh Windows 11: only powershell.exe (5.1), scripts blocked by the execution policy."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "powershell -ExecutionPolicy Bypass -File tools\\bootstrap.ps1" in readme


DOCS = ["README.md", "docs/windows.md", "docs/troubleshooting.md", "docs/engines.md", "docs/fireworks.md"]


def powershell_blocks(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each ```powershell block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, start = [], None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if start is None and stripped.startswith("```powershell"):
            start = i + 1
        elif start is not None and stripped == "```":
            blocks.append((start + 1, "\n".join(x.strip() for x in lines[start:i]) + "\n"))
            start = None
    return blocks


@pytest.mark.parametrize("doc", DOCS)
def test_documented_powershell_commands_run_under_51(doc: str) -> None:
    """What the docs tell a Windows user to type works in powershell.exe too."""
    path = ROOT / doc
    problems = []
    blocks = powershell_blocks(path)
    assert blocks or doc not in ("README.md", "docs/windows.md")
    for line, block in blocks:
        ascii_block = block.encode("ascii", "replace")  # a typed command is not a file: no BOM rule
        problems += [f"{doc}:{line}: {f}" for f in ps7_only_constructs(ascii_block)]
    assert not problems, "\n".join(problems)
