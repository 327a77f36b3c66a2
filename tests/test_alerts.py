"""Alerts sent to real local servers: a webhook (http.server on 127.0.0.1) and an SMTP server (aiosmtpd), the alerts being the
restatements of real loads (the legacy CUR sample's 2023-10 and 2023-11, each delivered and then re-delivered)."""
import email, email.policy, fcntl, json, shutil, socket, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import cur_fixtures as cf
from finops_nb import alerts as A
from finops_nb import diffs
from finops_nb.aws.manifests import aws_export
from finops_nb.core import ConfigError, TransientError
from finops_nb.localdb import connect, database_lock
from helpers import config, query, run

TOKEN = "T0FINOPS/B0FINOPS/tok3nS3cr3tXYZ"
PASSWORD = "s3cret-smtp-pass-42"
TO = ("ops@example.com", "finance@example.com")


# ------------------------------------------------------------------------------------------------
# servers
# ------------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lock_free(path):
    "Could another holder take this lock file now? (True when nobody holds it.)"
    try: fd = open(path, "a")
    except OSError: return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError: return False
    finally: fd.close()


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        srv = self.server
        got = srv.got  # this test's list, even when the answer comes late
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv.lock_free.append(tuple(lock_free(p) for p in srv.watch))
        status, text, delay = srv.answers.pop(0) if srv.answers else (200, "ok", 0)
        time.sleep(delay)
        got.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body), "status": status})
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError: pass  # the client gave up waiting

    def log_message(self, *args): pass


@pytest.fixture(scope="module")
def hook():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown(); srv.server_close()


class Inbox:
    "The SMTP server's handler: keeps each message; refuses nobody@… recipients."
    def __init__(self): self.messages, self.logins = [], []
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"): return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    def auth(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"finops", PASSWORD.encode())
        inbox.logins.append((data.login, ok))
        return AuthResult(success=ok, handled=False)
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=auth, auth_require_tls=False)
    ctl.start()
    yield ctl, inbox
    ctl.stop()


@pytest.fixture
def servers(hook, smtp):
    "Both servers, emptied; the webhook answers 200 unless told otherwise."
    ctl, inbox = smtp
    hook.got, hook.answers, hook.lock_free, hook.watch = [], [], [], ()
    inbox.messages.clear(); inbox.logins.clear()
    return hook, ctl, inbox


# ------------------------------------------------------------------------------------------------
# a database with two restatements, copied for each test
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def restated_db(tmp_path_factory):
    "2023-10 and 2023-11 of the legacy CUR sample loaded, then both re-delivered with other rows."
    tmp = tmp_path_factory.mktemp("alerts-db")
    cfg = config(tmp)
    for period, rows in (("2023-10", 300), ("2023-11", 700)):
        cf.build_v1_csv(tmp / "bucket", period=period, assembly_id=f"{period}-a", files=1, rows=rows)
    run(cfg)
    for period, rows in (("2023-10", slice(100, 500)), ("2023-11", slice(200, 1281))):
        cf.build_v1_csv(tmp / "bucket", period=period, assembly_id=f"{period}-b", files=1, rows=rows)
    assert {r.action for r in run(cfg)} == {"replaced"}
    return tmp / "finops.duckdb", aws_export(cfg).id


def setup(tmp_path, restated_db, hook=None, smtp=None, copy=True, **kw):
    "A config on a copy of the restated database (`copy=False`: the copy made before), sending to the given servers."
    db, _ = restated_db
    if copy: shutil.copy(db, tmp_path / "finops.duckdb")
    over = {"alerts.restatement_threshold": "0.000001", "alerts.timeout": 5}
    if hook: over.update({"alerts.webhook_url": f"http://127.0.0.1:{hook.server_address[1]}/services/{TOKEN}", "alerts.webhook_format": "slack"})
    if smtp: over.update({"alerts.smtp_host": "127.0.0.1", "alerts.smtp_port": smtp.port, "alerts.email_from": "finops@example.com",
                          "alerts.email_to": ",".join(TO), "alerts.smtp_username": "finops", "alerts.smtp_password": PASSWORD})
    return config(tmp_path, **{**over, **kw})


def restatement_alerts(cfg):
    con = connect(cfg, read_only=True)
    try: return diffs.alerts(cfg, con)
    finally: con.close()


def state(cfg):
    "{(key, channel): (sent?, attempts, last_error)} of finops_alerts."
    return {(k, c): (s is not None, n, e) for k, c, s, n, e in query(cfg, f"SELECT key, channel, sent_at, attempts, last_error FROM {A.STATE}")}


def everything(cfg, *results):
    "All a user or an operator can see of the sends: their results, errors, and the state table as text."
    rows = query(cfg, f"SELECT * FROM {A.STATE}") if query(cfg, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{A.STATE}'")[0][0] else []
    return "\n".join([str(r) for r in results] + [str(r.error) for r in results] + [repr(rows)])


ONLY = ("finops_nb.diffs",)


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------
def test_restatements_go_out_once_to_the_slack_webhook_and_by_email(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    cfg = setup(tmp_path, restated_db, hook, ctl)
    hook.watch = (database_lock(cfg), A.alerts_lock(cfg))
    want = restatement_alerts(cfg)
    _, eid = restated_db
    assert [a["key"] for a in want] == [f"restatement/{eid}/2023-10/2023-10-b", f"restatement/{eid}/2023-11/2023-11-b"]
    res = A.send(cfg, sources=ONLY)
    assert res.error is None and res.exit_code == 0
    assert [(c.channel, c.sent, c.pending) for c in res.channels] == [("webhook", [a["key"] for a in want], []), ("email", [a["key"] for a in want], [])]
    # the webhook: one Slack message, a header and a section per alert
    (post,) = hook.got
    assert post["path"] == f"/services/{TOKEN}" and post["type"].startswith("application/json")
    body = post["json"]
    assert set(body) == {"text", "blocks"} and body["text"].startswith("finops: 2 alerts (2 restatement): ")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    for a, block in zip(want, body["blocks"][1:]):
        assert block["text"]["text"].startswith(f"*{a['title']}*\n") and a["title"] in body["text"]
    assert hook.lock_free == [(True, False)]  # while the channel was waited on: the database's lock free, the senders' held
    # the email: one message to both recipients, after a login
    ((sender, rcpts, msg),) = inbox.messages
    assert (sender, rcpts, inbox.logins) == ("finops@example.com", list(TO), [(b"finops", True)])
    assert (msg["Subject"], msg["From"], msg["To"]) == ("finops: 2 alerts (2 restatement)", "finops@example.com", ", ".join(TO))
    text = msg.get_content()
    for a in want: assert a["title"] in text and a["text"].splitlines()[1] in text
    # recorded once the channels took them; a second send sends nothing
    assert state(cfg) == {(a["key"], c): (True, 1, None) for a in want for c in ("webhook", "email")}
    again = A.send(cfg, sources=ONLY)
    assert [c.due for c in again.channels] == [[], []] and again.alerts == [] and str(again).startswith("no alert due")
    assert len(hook.got) == 1 and len(inbox.messages) == 1
    payload = json.loads(query(cfg, f"SELECT payload FROM {A.STATE} WHERE channel = 'webhook' ORDER BY key")[0][0])
    assert payload == json.loads(json.dumps(want[0]))
    assert TOKEN not in everything(cfg, res, again) and PASSWORD not in everything(cfg, res, again)


def test_a_failing_webhook_keeps_its_alerts_until_a_later_send_delivers_them_once(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    cfg = setup(tmp_path, restated_db, hook, ctl, **{"alerts.webhook_format": "json"})
    keys = [a["key"] for a in restatement_alerts(cfg)]
    hook.answers = [(500, "internal error", 0)]
    res = A.send(cfg, sources=ONLY)
    web, mail = res.channels
    assert (web.sent, web.pending, web.error) == ([], keys, "answered HTTP 500 Internal Server Error: internal error")
    assert (mail.sent, mail.error) == (keys, "")  # the other channel is not held back
    assert isinstance(res.error, TransientError) and res.exit_code == 75 == res.error.exit_code
    assert "webhook http://127.0.0.1:" in str(res.error) and "2 alert(s) kept for the next send" in str(res.error)
    assert state(cfg) == {**{(k, "webhook"): (False, 1, web.error) for k in keys}, **{(k, "email"): (True, 1, None) for k in keys}}
    # the next send: the webhook gets both (JSON format), the email nothing
    res2 = A.send(cfg, sources=ONLY)
    assert res2.exit_code == 0 and [c.sent for c in res2.channels] == [keys, []]
    assert [p["status"] for p in hook.got] == [500, 200] and hook.got[0]["json"] == hook.got[1]["json"]
    assert [a["key"] for a in hook.got[1]["json"]["alerts"]] == keys and set(hook.got[1]["json"]["alerts"][0]) == set(A.FIELDS)
    assert hook.got[1]["json"]["alerts"][0]["data"]["totals"]["USD"]["BilledCost_delta"] == \
        diffs.plain(diffs.restatements(cfg)[0].totals["USD"]["BilledCost_delta"])
    assert len(inbox.messages) == 1
    assert state(cfg) == {**{(k, "webhook"): (True, 2, None) for k in keys}, **{(k, "email"): (True, 1, None) for k in keys}}
    assert [c.due for c in A.send(cfg, sources=ONLY).channels] == [[], []] and len(hook.got) == 2


def test_a_dead_or_slow_webhook_fails_with_its_reason_then_delivers(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    dead = setup(tmp_path, restated_db, **{"alerts.webhook_url": f"http://127.0.0.1:{free_port()}/services/{TOKEN}"})
    res1 = A.send(dead, sources=ONLY)
    assert res1.exit_code == 75 and res1.channels[0].error == "cannot reach it: Connection refused"
    hook.answers = [(200, "ok", 2)]  # answers after the 1 s the channel may take
    res2 = A.send(setup(tmp_path, restated_db, hook, copy=False, **{"alerts.timeout": 1}), sources=ONLY)
    assert res2.exit_code == 75 and res2.channels[0].error in ("no answer within 1 s", "cannot reach it: timed out")
    live = setup(tmp_path, restated_db, hook, copy=False)
    keys = [a["key"] for a in restatement_alerts(live)]
    assert {k: v[:2] for k, v in state(live).items()} == {(k, "webhook"): (False, 2) for k in keys}
    res3 = A.send(live, sources=ONLY)
    assert res3.exit_code == 0 and res3.channels[0].sent == keys
    assert state(live) == {(k, "webhook"): (True, 3, None) for k in keys}
    assert TOKEN not in everything(live, res1, res2, res3)


def test_several_recipients_one_refused(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    cfg = setup(tmp_path, restated_db, smtp=ctl, **{"alerts.email_to": "a@example.com,nobody@example.com,b@example.com"})
    res = A.send(cfg, sources=ONLY)
    (mail,) = res.channels
    assert res.exit_code == 0 and len(mail.sent) == 2 and mail.note.startswith("recipients refused: nobody@example.com (550")
    ((_, rcpts, msg),) = inbox.messages
    assert rcpts == ["a@example.com", "b@example.com"] and msg["To"] == "a@example.com, nobody@example.com, b@example.com"
    everyone = setup(tmp_path, restated_db, smtp=ctl, **{"alerts.email_to": "nobody@example.com"})
    res = A.send(everyone, sources=ONLY)
    assert res.exit_code == 75 and res.channels[0].error.startswith("every recipient was refused: nobody@example.com (550")


def test_dry_run_sends_nothing_and_records_nothing(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    cfg = setup(tmp_path, restated_db, hook, ctl)
    res = A.send(cfg, dry_run=True, sources=ONLY)
    keys = [a["key"] for a in restatement_alerts(cfg)]
    assert res.dry_run and [c.due for c in res.channels] == [keys, keys] and [c.sent for c in res.channels] == [[], []]
    assert str(res).startswith("DRY RUN, nothing sent or recorded: 2 alert(s) due") and "would send 2" in str(res)
    assert hook.got == [] and inbox.messages == []
    assert query(cfg, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{A.STATE}'") == [(0,)]
    assert [c.due for c in A.send(cfg, dry_run=True, sources=ONLY).channels] == [keys, keys] and not A.alerts_lock(cfg).exists()


def test_secrets_never_in_output_errors_or_records(tmp_path, restated_db, servers):
    hook, ctl, inbox = servers
    cfg = setup(tmp_path, restated_db, hook, ctl, **{"alerts.smtp_password": "wrong-" + PASSWORD})
    hook.answers = [(404, f"no_service: no hook at /services/{TOKEN}", 0)]  # an endpoint that quotes the URL back
    res = A.send(cfg, sources=ONLY)
    web, mail = res.channels
    assert res.exit_code == 75
    assert web.error == "answered HTTP 404 Not Found: no_service: no hook at …" and mail.error.startswith("login as finops refused: 535")
    assert inbox.logins and not any(ok for _, ok in inbox.logins) and inbox.messages == []  # smtplib tries each mechanism
    seen = everything(cfg, res)
    assert TOKEN not in seen and "tok3nS3cr3t" not in seen and PASSWORD not in seen
    assert f"http://127.0.0.1:{hook.server_address[1]}/…" in str(res)
    assert [c.target for c in A.channels(cfg)] == [f"http://127.0.0.1:{hook.server_address[1]}/… (slack)", f"127.0.0.1:{ctl.port} to {', '.join(TO)}"]


def test_collect_skips_missing_sources_not_failing_ones(tmp_path, restated_db, monkeypatch):
    cfg = setup(tmp_path, restated_db)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "src_raises.py").write_text("def alerts(cfg, con):\n    raise RuntimeError('budget table is broken')\n")
    (tmp_path / "src_imports.py").write_text("import a_package_nobody_installed\ndef alerts(cfg, con): return []\n")
    (tmp_path / "src_money.py").write_text("from decimal import Decimal\ndef alerts(cfg, con):\n"
                                           "    return [{'key': 'budget/x', 'kind': 'budget', 'title': 't', 'text': 'x', 'data': {'spent': Decimal('10.10')}}]\n")
    con = connect(cfg, read_only=True)
    try:
        keys = [a["key"] for a in restatement_alerts(cfg)]
        assert [a["key"] for a in A.collect(cfg, con, ("finops_nb.diffs", "finops_nb.no_such_source"))] == keys
        with pytest.raises(RuntimeError, match="budget table is broken"): A.collect(cfg, con, ("finops_nb.diffs", "src_raises"))
        with pytest.raises(ModuleNotFoundError, match="a_package_nobody_installed"): A.collect(cfg, con, ("src_imports",))
        assert A.collect(cfg, con, ("src_money",))[0]["data"] == {"spent": "10.10"}
        assert set(keys) <= {a["key"] for a in A.collect(cfg, con)}  # the default sources: anomalies and budgets where they exist
    finally: con.close()


def test_half_set_up_channels_are_config_errors_and_no_channel_sends_nothing(tmp_path, restated_db):
    cfg = setup(tmp_path, restated_db, **{"alerts.smtp_host": "127.0.0.1"})
    with pytest.raises(ConfigError, match=r"\[alerts\] smtp_host is set but email_to is empty"): A.send(cfg)
    cfg = setup(tmp_path, restated_db, **{"alerts.smtp_host": "127.0.0.1", "alerts.email_to": "a@example.com", "alerts.email_from": "f@example.com",
                                           "alerts.smtp_ssl": True, "alerts.smtp_starttls": True})
    with pytest.raises(ConfigError, match="smtp_ssl and smtp_starttls are both on"): A.send(cfg)
    none = setup(tmp_path, restated_db)
    res = A.send(none, sources=ONLY)
    assert res.channels == [] and len(res.alerts) == 2 and res.exit_code == 0 and "no channel set up" in str(res)
    assert query(none, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{A.STATE}'") == [(0,)]
