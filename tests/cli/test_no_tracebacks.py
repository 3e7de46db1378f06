"""Property: whatever a user types and whatever their environment holds, every command answers with an exit
code of 0, 1 or 2 and, when it fails, a message: never a traceback (DESIGN §11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.backends.sqlite.lock import installation_lock
from reconciler.cli.main import cli
from reconciler.errors import Busy, Transient
from tests.support.cli import partnerctl
from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import PARTNER

# Commands that serve until stopped: run in a process of their own and stopped after a while.
SERVING = {("gateway", "serve"), ("console", "serve"), ("demo",)}
ENVIRONMENT = [
    "PARTNERCTL_HOME", "PARTNERCTL_REPO", "PARTNERCTL_STATE", "PARTNERCTL_SECRETS", "PARTNERCTL_TRUST_ROOT",
    "PARTNERCTL_NOW", "PARTNERCTL_DEV_ALLOW_LOOPBACK", "PARTNERCTL_GATEWAY_URL", "VAULT_ADDR", "VAULT_TOKEN",
    "VAULT_NAMESPACE", "GITHUB_TOKEN", "GITHUB_REPOSITORY", "KUBECONFIG", "POD_NAMESPACE",
]  # fmt: skip


def command_paths() -> list[tuple[str, ...]]:
    """Every runnable command, subcommands of groups included."""
    paths: list[tuple[str, ...]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                assert sub is not None
                walk(sub, (*path, name))
        else:
            paths.append(path)

    walk(cli, ())
    return paths


def command_of(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def option_names(path: tuple[str, ...]) -> list[str]:
    return sorted({opt for param in command_of(path).params for opt in param.opts if opt.startswith("-")})


PATHS = command_paths()


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Things a user might point partnerctl at: a partner repository, a file, a folder, nothing."""
    root = tmp_path_factory.mktemp("fuzz")
    repo = GitPartnerRepo.create(root / "repo")
    repo.write_partner(PARTNER)
    repo.commit("Catalog, tenant and ACME")
    (root / "file.txt").write_text("not a folder, not YAML: {[")
    (root / "empty").mkdir()
    home = root / "home"  # an installation with a partner in it, for the commands that read one
    applied = partnerctl("--repo", str(repo.root), "--home", str(home), "--approval", "none", "apply")
    assert applied.exit_code == 0, applied
    return {"repo": str(repo.root), "file": str(root / "file.txt"), "folder": str(root / "empty"),
            "missing": str(root / "missing" / "deeper"), "manifest": str(repo.root / "partners"), "home": str(home),
            "trust-root": str(Path(__file__).resolve().parents[2] / "examples" / "trust-root.yaml")}  # fmt: skip


def values(places: dict[str, str]) -> st.SearchStrategy[str]:
    loopback = ["vault+http://127.0.0.1:9", "vault://", "vault+https://127.0.0.1:9?mount=x&bogus=1",
                "kubernetes://scp", "sqlite:///" + places["missing"], "local:///" + places["folder"],
                "postgresql://u@127.0.0.1:9/db", "ftp://x", "http://127.0.0.1:9"]  # fmt: skip
    words = ["", "-", "0", "-1", "99999", "5m", "1d", "abc", "0,5,300", "1,,x", "json", "text", "github", "none",
             "git", "main", "HEAD", "ministry-social-affairs/acme-bank", "a/b/c", "UPPER/case", "2027-01-31T12:00:00Z",
             "not-a-time", '{"payment_id": "p"}', "{", "payment.status.changed", "1"]  # fmt: skip
    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
    return st.one_of(st.sampled_from([*places.values(), *loopback, *words]), text.filter(lambda v: ".." not in v))


def likely(places: dict[str, str]) -> dict[str, list[str]]:
    """Values a user would give each parameter, so that most command lines get past parsing."""
    return {
        "--repo": [places["repo"]], "--home": [places["home"]], "--ref": ["HEAD", "main"], "--approval": ["none"],
        "--state": ["sqlite:///" + places["home"] + "/state.db"],
        "--secrets": ["local:///" + places["home"] + "/secrets"],
        "--trust-root": [places["trust-root"]], "--check-interval": ["5m", "0"], "--interval": ["1", "0"],
        "--type": ["payment.status.changed"], "--data": ['{"payment_id": "p-1", "status": "paid", "amount": 1, '
                                                         '"beneficiary_name": "A"}'],
        "--since": ["2026-11-28T00:00:00Z"], "--partner": ["ministry-social-affairs/acme-bank"],
        "partner": ["ministry-social-affairs/acme-bank"], "paths": [places["manifest"], "partners"],
        "branch": ["main"], "--policy-document": ["DPA-1"], "--base": ["main"], "--lease-duration": ["15"],
    }  # fmt: skip


@st.composite
def arguments_for(draw: st.DrawFn, path: tuple[str, ...], places: dict[str, str]) -> list[str]:
    """Mostly well-formed command lines (so the commands get past parsing), sometimes with noise."""
    usual = likely(places)
    value = values(places)

    def value_of(name: str) -> str:
        if name in usual and draw(st.integers(0, 3)):
            return draw(st.sampled_from(usual[name]))
        return draw(value)

    arguments: list[str] = []
    if draw(st.integers(0, 3)):  # the usual setting: this repository, this installation
        arguments += ["--repo", places["repo"], "--home", places["home"], "--approval", "none"]
    for param in command_of(path).params:
        if isinstance(param, click.Argument):
            count = draw(st.integers(0, 2)) if param.nargs == -1 else (1 if draw(st.integers(0, 9)) else 0)
            arguments += [value_of(param.name or "") for _ in range(count)]
        elif isinstance(param, click.Option) and param.opts[0] != "--help" and draw(st.integers(0, 3)) == 0:
            arguments.append(param.opts[0])
            if isinstance(param.type, click.Choice) and draw(st.integers(0, 4)):
                arguments.append(str(draw(st.sampled_from(param.type.choices))))
            elif isinstance(param.type, click.IntRange) and draw(st.integers(0, 4)):
                arguments.append(str(draw(st.integers(0, 70000))))
            elif not param.is_flag:
                arguments.append(value_of(param.opts[0]))
    if draw(st.integers(0, 9)) == 0:
        arguments.insert(draw(st.integers(0, len(arguments))), draw(value))
    return arguments


@st.composite
def invocations(draw: st.DrawFn, places: dict[str, str]) -> tuple[tuple[str, ...], list[str], dict[str, str]]:
    path = draw(st.sampled_from(PATHS))
    arguments = draw(arguments_for(path, places))
    if path in (("run",), ("dispatch",)):
        arguments.append("--once")  # the loop would go on for ever; once exercises the same code
    environment = draw(st.dictionaries(st.sampled_from(ENVIRONMENT), values(places), max_size=3)
                       if draw(st.booleans()) else st.just({}))  # fmt: skip
    return path, arguments, environment


@contextmanager
def environment(values: dict[str, str], cwd: Path) -> Iterator[None]:
    saved, before = dict(os.environ), Path.cwd()
    # Never the network: a GitHub or Vault lookup goes to a closed loopback port and fails at once.
    os.environ.update({"GITHUB_API_URL": "http://127.0.0.1:9", "VAULT_ADDR": "http://127.0.0.1:9"})
    os.environ.update({name: value for name, value in values.items() if "\x00" not in value})
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(before)


def assert_answered(exit_code: int, stdout: str, stderr: str) -> None:
    assert exit_code in (0, 1, 2), (exit_code, stderr[-2000:])
    assert "Traceback" not in stdout + stderr, stderr[-4000:]
    if exit_code != 0:
        assert stderr.strip() or stdout.strip(), "a failure without a message"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_no_command_answers_with_a_traceback(data: st.DataObject, places: dict[str, str], tmp_path: Path) -> None:
    path, arguments, env = data.draw(invocations(places))
    if path in SERVING:
        return  # covered below, in processes of their own
    with environment(env, tmp_path):
        result = partnerctl(*path, *arguments)
    event(f"{' '.join(path)}: exit {result.exit_code}")
    assert_answered(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("path", sorted(SERVING))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_serving_commands_start_or_say_why_not(
    path: tuple[str, ...], data: st.DataObject, places: dict[str, str], tmp_path: Path
) -> None:
    arguments = data.draw(arguments_for(path, places))
    env = {**os.environ, "GITHUB_API_URL": "http://127.0.0.1:9", **data.draw(
        st.dictionaries(st.sampled_from(ENVIRONMENT), values(places), max_size=3))}  # fmt: skip
    env = {name: value for name, value in env.items() if "\x00" not in value}
    command = [str(Path(sys.executable).parent / "partnerctl"), *path, *arguments]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=4)
    except subprocess.TimeoutExpired:  # it is serving (or touring): stop it as a user would, with ^C
        os.killpg(process.pid, signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        assert "Traceback" not in stdout + stderr, stderr[-4000:]
        return
    assert_answered(process.returncode, stdout, stderr)


def test_partnerctl_home_naming_a_file_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PARTNERCTL_HOME", str(tmp_path / "a-file"))
    result = partnerctl("status")
    assert result.exit_code == 1 and "is a file, not a folder" in result.stderr
    assert_answered(result.exit_code, result.stdout, result.stderr)


def test_a_damaged_state_database_is_a_message(installation: Installation) -> None:
    installation.onboard()
    (installation.home / "state.db").write_bytes(b"not a database at all" * 100)
    for wal in installation.home.glob("state.db-*"):
        wal.unlink()
    result = installation.run("status")
    assert result.exit_code == 1 and "state.db is damaged or not a partnerctl database" in result.stderr
    assert_answered(result.exit_code, result.stdout, result.stderr)


def test_an_audit_line_replaced_by_a_number_is_reported_as_tampering(installation: Installation) -> None:
    installation.onboard()
    log = installation.home / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = "42\n"
    log.write_text("".join(lines))
    verdict = installation.run("--output", "json", "audit", "verify")
    assert verdict.exit_code == 1 and verdict.json()["firstBrokenSeq"] == 2
    shown = installation.run("audit", "log")
    assert shown.exit_code == 0 and "not an audit entry: 42" in shown.stdout
    assert_answered(shown.exit_code, shown.stdout, shown.stderr)


def test_a_schedule_that_is_not_numbers_is_a_usage_error(installation: Installation) -> None:
    result = installation.run("dispatch", "--once", "--schedule", "abc")
    assert result.exit_code == 2 and "comma-separated seconds" in result.stderr
    assert_answered(result.exit_code, result.stdout, result.stderr)


def test_another_writer_holding_the_installation_is_busy_not_a_usage_error(installation: Installation) -> None:
    installation.home.mkdir(parents=True, exist_ok=True)
    with installation_lock(installation.home), pytest.raises(Busy) as busy, installation_lock(
        installation.home, timeout=0.2
    ):
        pass
    assert busy.value.exit_code == 1 and isinstance(busy.value, Transient)
