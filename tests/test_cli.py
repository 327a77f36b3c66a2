"The installed `finops` command, run as a user runs it: a subprocess."

import finops_nb

from helpers import cli as finops

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_version():
    r = finops("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"finops_nb {finops_nb.__version__}"


def test_help_lists_commands():
    r = finops("--help")
    assert r.returncode == 0 and "config" in r.stdout


def test_config_masks_secrets_and_names_sources(tmp_path):
    (tmp_path / "config.toml").write_text(
        f'[aws]\nbucket = "my-billing"\naws_access_key_id = "AKIAIOSFODNN7EXAMPLE"\naws_secret_access_key = "{SECRET}"\n')
    r = finops("config", cwd=tmp_path, env={"FINOPS__AWS__REGION": "eu-west-1"})
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout and "AKIAIOSFODNN7EXAMPLE" not in r.stdout
    assert "wJal…KEY" in r.stdout and "AKIA…PLE" in r.stdout
    lines = {l.split()[1] if l.startswith("[") else l.split()[0]: l for l in r.stdout.splitlines()[1:]}
    assert lines["bucket"].split()[-1] == "config.toml" and "my-billing" in lines["bucket"]
    assert lines["region"].endswith("env FINOPS__AWS__REGION")
    assert lines["staging_dir"].split()[-1] == "default"


def test_config_errors_are_one_line(tmp_path):
    cases = {
        '[aws]\nbuket = "x"\n': "unknown key [aws] buket (did you mean [aws] bucket?)",
        '[aws]\ncur_version = "v3"\n': "[aws] cur_version: 'v3' is not allowed; use one of \"v1\", \"v2\"",
        'start_date = "2024/01"\n': "start_date: '2024/01' is not a billing period; use YYYY-MM",
        '[aws\n': "not valid TOML",
        '[database.duckdb]\nthreads = "many"\n': "[database.duckdb] threads: 'many' is not allowed",
    }
    for text, expected in cases.items():
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        r = finops("--config", str(cfg), "config")
        assert r.returncode == 2, (text, r)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert str(cfg) in r.stderr and expected in r.stderr, r.stderr


def test_missing_config_file_and_bad_env(tmp_path):
    r = finops("--config", str(tmp_path / "nope.toml"), "config")
    assert r.returncode == 2 and "config file not found" in r.stderr and "nope.toml" in r.stderr
    r = finops("config", cwd=tmp_path, env={"FINOPS__AWS__CUR_VERSION": "v3"})
    assert r.returncode == 2 and "FINOPS__AWS__CUR_VERSION" in r.stderr
    r = finops("config", cwd=tmp_path, env={"FINOPS__AWS__BUKET": "b"})
    assert r.returncode == 2 and "did you mean FINOPS__AWS__BUCKET" in r.stderr


def test_secret_never_in_error_output(tmp_path):
    (tmp_path / "config.toml").write_text(f'[aws]\naws_secret_access_key = "{SECRET}"\n')
    r = finops("--debug", "config", cwd=tmp_path)  # key id missing: an error, even with --debug
    assert r.returncode == 2 and "go together" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_debug_shows_traceback(tmp_path):
    r = finops("--debug", "--config", str(tmp_path / "nope.toml"), "config")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_bad_file_value_is_reported_even_when_overridden(tmp_path):
    (tmp_path / "config.toml").write_text('[aws]\ncur_version = "v3"\n')
    r = finops("config", cwd=tmp_path, env={"FINOPS__AWS__CUR_VERSION": "v2"})
    assert r.returncode == 2 and "config.toml: [aws] cur_version: 'v3' is not allowed" in r.stderr
