"""`creditnode demo`: a local four-region federation and one verified cross-region transfer (the scenario).

Four real nodes (uvicorn processes on 127.0.0.1, ports from `config/regions/*.toml`, SQLite in a temporary
directory unless `--data-dir`; processes: `node.demo.supervisor`) are initialised with fresh secrets and keys;
then, through their public HTTP
APIs only: staff accounts (Shanghai's published standards are loaded at start), the founding membership signed
by all four and installed everywhere, an agreement between the origin and the destination proposed by one and
signed by the other, a learner's course result and vocational certificate deposited at the origin through the
two-stage review, the learner's holder binding at the destination and consent at the origin, the transfer at
the destination (pull, verification, recognition under the agreement), the destination's receipt recorded in
the origin's ledger, and — where the destination has a rule for the certificate — a conversion into programme
credits under the destination's own rules. Each step is printed; the outcome is re-verified here, independently, from the
published DID documents. `--export-dir` writes every signed artefact and a `manifest.json`. The nodes are
stopped on exit, on error and on Ctrl-C. With `--keep-running` the demo then watches them until Ctrl-C: a node
that dies is reported (exit code or signal, the end of its log) and the others keep running;
`creditnode demo restart REGION` brings it back on its data. Before it is left running, each region gets a learner
with records, and the demo prints per region the portal URL and a sign-in for every role, with passwords drawn for
this run (node.demo.signins; none is written in the code).

The file is one linear scenario that reads top to bottom, step after step (hence its length); everything about
processes is in `node/demo/supervisor.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from node.demo.signins import STAFF_ROLES, SignIns, demo_password
from node.demo.supervisor import TEMP_PREFIX, DemoNode, Supervisor

__all__ = ["DemoError", "run_demo"]

REGIONS = ("shanghai", "jiangsu", "zhejiang", "anhui")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
RECEIPT_TIMEOUT = 20.0
# the learner's outcome at the origin (a university of that region) and what the agreement maps it to
ORIGIN_ISSUERS = {"shanghai": ("10280", "上海大学"), "jiangsu": ("10284", "南京大学"),
                  "zhejiang": ("10335", "浙江大学"), "anhui": ("10358", "中国科学技术大学")}
# the regions' published conversion standards, loaded at start (`creditnode standards load`)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
STANDARDS = {"shanghai": ("standards/framework.json", "standards/shanghai-pilot-2016.json")}
DEST_COURSE = {"code": "GEN-MATH-A", "title": "高等数学（互认）"}
CERTIFICATE = {"code": "VQ.AUTO_REPAIR", "title": "汽车维修工", "level": "三级"}
# the destination programme whose 直通车 rule takes that certificate (config/standards/shanghai-pilot-2016.json)
CONVERSION_PROGRAMME = {"shanghai": "SOU-AUTO-SVC"}


class DemoError(RuntimeError):
    """A step failed; the message says which and why."""


def _synthetic_id_number() -> str:
    """A valid GB 11643-1999 number (weights and check characters of the standard) for a made-up person."""
    first = "310101" + "19950412" + f"{secrets.randbelow(900) + 100}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first + "10X98765432"[sum(int(c) * w for c, w in zip(first, weights, strict=True)) % 11]


class Demo:
    def __init__(self, console: Console, *, data_dir: Path | None, origin: str, destination: str,
                 export_dir: Path | None, base_port: int | None) -> None:
        from config.settings import load_region

        if origin == destination or origin not in REGIONS or destination not in REGIONS:
            raise DemoError(f"origin and destination must be two of {', '.join(REGIONS)}")
        self.console = console
        self.origin_id, self.destination_id = origin, destination
        self.export_dir = export_dir
        self._own_tmp = data_dir is None
        self.root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) if data_dir is None else data_dir.resolve()
        self.nodes: dict[str, DemoNode] = {}
        for index, region in enumerate(REGIONS):
            profile = load_region(region)
            port = profile.default_port if base_port is None else base_port + index
            self.nodes[region] = DemoNode(region, port, f"http://127.0.0.1:{port}", self.root / region)
        # every account's password is drawn for this run (node.demo.signins); the administrators' is shared by
        # the four nodes' `creditnode init`
        self.sign_ins = SignIns()
        self.admin_password = demo_password()
        for region in REGIONS:
            self.sign_ins.add(region, "node_admin", "admin", self.admin_password)
        self.supervisor = Supervisor(self.root, self.nodes, password=self.admin_password,
                                     standards={r: [CONFIG_DIR / f for f in files] for r, files in STANDARDS.items()},
                                     say=lambda text: self.console.print(f"    {escape(text)}", highlight=False))
        self.http = httpx.Client(timeout=httpx.Timeout(20.0, connect=2.0), trust_env=False)
        self.artefacts: dict[str, Any] = {}
        self.step_no = 0
        self.started = time.monotonic()

    # -- output ---------------------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.step_no += 1
        elapsed = time.monotonic() - self.started
        self.console.print(f"\n[bold cyan]{self.step_no:>2}. {title}[/bold cyan] [dim](+{elapsed:.1f} s)[/dim]")

    def info(self, text: str) -> None:
        self.console.print(f"    {text}", highlight=False)

    def ok(self, text: str) -> None:
        self.console.print(f"    [green]✓[/green] {text}", highlight=False)

    # -- HTTP ------------------------------------------------------------------------------------------

    def call(self, node: DemoNode, method: str, path: str, *, as_: str | None = None, expect: int | tuple = 200,
             **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if as_ is not None:
            headers.update(node.tokens[as_])
        try:
            response = self.http.request(method, node.base_url + path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            dead = self.supervisor.newly_dead()
            if dead:  # the step failed because a node died: say which, and how
                raise DemoError("\n".join(self.supervisor.exit_report(n) for n in dead)) from None
            raise DemoError(f"{node.region}: {method} {path}: {type(exc).__name__}: {exc}") from None
        expected = expect if isinstance(expect, tuple) else (expect,)
        if response.status_code not in expected:
            raise DemoError(f"{node.region}: {method} {path} answered {response.status_code}: {response.text[:600]}")
        ctype = response.headers.get("content-type", "")
        return response.json() if "json" in ctype else response.text

    def sign_in(self, node: DemoNode, name: str, username: str, password: str) -> None:
        token = self.call(node, "POST", "/api/v1/auth/token", data={"username": username, "password": password})
        node.tokens[name] = {"Authorization": f"Bearer {token['access_token']}"}

    # -- processes -------------------------------------------------------------------------------------

    def check_ports(self) -> None:
        for node in self.supervisor.check_ports():
            raise DemoError(
                f"port {node.port} on 127.0.0.1 (needed by the {node.region} node) is busy: stop whatever "
                f"listens there (another `creditnode demo --keep-running`?) and run the demo again")

    def start(self) -> None:
        """Start the four node processes; each initialises its data directory (fresh secrets and keys, schema,
        first administrator) and then serves, so the four initialise in parallel."""
        for node in self.nodes.values():
            if node.config_path.exists():
                raise DemoError(f"{node.data_dir} already holds a node; give an empty --data-dir (to bring back a "
                                f"node of a running demo: creditnode demo restart REGION --data-dir {self.root})")
        try:
            self.supervisor.start()
        except RuntimeError as exc:
            raise DemoError(str(exc)) from None

    def stop(self) -> None:
        self.supervisor.stop()
        self.http.close()

    def cleanup(self) -> None:
        if self._own_tmp:
            shutil.rmtree(self.root, ignore_errors=True)

    def watch(self) -> None:
        """Until Ctrl-C: report each node that dies (the others keep running) and carry out the restart
        requests of `creditnode demo restart`."""
        self.learners_elsewhere()
        self.supervisor.write_state()
        restart = f"creditnode demo restart REGION{'' if self._own_tmp else f' --data-dir {self.root}'}"
        self.console.print(f"\nThe nodes keep running (Ctrl-C stops them); the demo watches them. Bring one back "
                           f"on its data with `{restart}`. Sign in on each region's portal as any of these "
                           f"(demo-only passwords, drawn for this run):", highlight=False)
        for node in self.nodes.values():
            self.console.print(f"    {node.region:9} portal {node.base_url}/   API {node.base_url}/docs   "
                               f"data {node.data_dir}", highlight=False)
            self.sign_ins.print(self.console, node.region)
        while True:
            for node in self.supervisor.newly_dead():
                self.console.print(f"\n[bold red]✗[/bold red] {escape(self.supervisor.exit_report(node))}",
                                   highlight=False)
                alive = [n.region for n in self.nodes.values() if n not in self.supervisor.dead()]
                self.console.print(f"    still running: {', '.join(alive) or 'none'}; bring it back with "
                                   f"`creditnode demo restart {node.region}"
                                   f"{'' if self._own_tmp else f' --data-dir {self.root}'}`", highlight=False)
            self.supervisor.serve_requests()
            time.sleep(0.5)

    # -- the scenario ------------------------------------------------------------------------------------

    @property
    def origin(self) -> DemoNode:
        return self.nodes[self.origin_id]

    @property
    def destination(self) -> DemoNode:
        return self.nodes[self.destination_id]

    def run(self) -> dict:
        self.step("Start four regional nodes on 127.0.0.1")
        self.check_ports()
        self.start()
        for node in self.nodes.values():
            self.ok(f"{node.region:9} {node.base_url}  did:web:127.0.0.1%3A{node.port}")
        self.staff()
        self.membership()
        agreement = self.agreement()
        learner = self.deposit()
        consent = self.consent(learner)
        transfer = self.transfer(learner, consent)
        receipt = self.receipt(learner, consent)
        conversion = self.convert()
        checks = self.verify(transfer, consent, receipt, agreement)
        if self.export_dir is not None:
            self.export(transfer, consent, receipt, agreement)
        return {"transfer": transfer, "conversion": conversion, "checks": checks}

    def staff(self) -> None:
        self.step("Staff accounts (through each node's admin API)")

        def accounts(node: DemoNode) -> None:
            self.sign_in(node, "admin", "admin", self.admin_password)
            code, name = ORIGIN_ISSUERS[node.region]  # the uploader's institution: a university of the region
            self.call(node, "POST", "/api/v1/admin/organisations", as_="admin", expect=201,
                      json={"code": code, "name": name, "kind": "institution", "institution_type": "university"})
            for username, role in STAFF_ROLES:
                password = demo_password()
                self.call(node, "POST", "/api/v1/admin/staff", as_="admin", expect=201,
                          json={"username": username, "display_name": username, "password": password,
                                "roles": [role], **({"organisation_code": code}
                                                    if role == "institution_uploader" else {})})
                self.sign_ins.add(node.region, role, username, password, name if role == "institution_uploader"
                                  else "")
                if role not in ("institution_uploader", "auditor"):  # the scenario acts as the others
                    self.sign_in(node, username, username, password)

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:  # password hashing is slow on purpose
            list(pool.map(accounts, self.nodes.values()))
        self.ok("at every node: outlet staff, branch and centre reviewers, an institution uploader, a standards "
                "admin, a federation admin and an auditor (passwords drawn for this run)")
        for region in (self.origin_id, self.destination_id):
            rules = self.call(self.nodes[region], "GET", "/api/v1/standards/rules", as_="standards",
                              params={"status": "approved"})
            if rules:
                kinds = ", ".join(f"{n} {k}" for k, n in sorted(Counter(r["kind"] for r in rules).items()))
                self.ok(f"{region}'s conversion standards loaded: {len(rules)} approved rules ({kinds}), "
                        f"e.g. {rules[0]['rule_id']} v{rules[0]['version']} {rules[0]['title']}")

    def membership(self) -> None:
        from federation.membership import founding_document

        self.step("Founding membership: every region signs the same document")
        document = founding_document()
        for member in document["members"]:
            node = self.nodes[member["node_id"]]
            member["base_url"] = node.base_url
            from crypto.did import did_web_from_url

            member["did"] = did_web_from_url(node.base_url)
        for node in self.nodes.values():
            view = self.call(node, "POST", "/api/v1/federation/membership/proposals", as_="fedadmin", expect=201,
                             json=document)
            view = self.call(node, "POST", f"/api/v1/federation/membership/proposals/{view['hash']}/signature",
                             as_="fedadmin")
            document = view["document"]
            self.ok(f"{node.region} signed version {view['version']} (hash {view['hash'][:16]}…)")
        for node in self.nodes.values():
            installed = self.call(node, "POST", "/api/v1/federation/membership/install", as_="fedadmin",
                                  json={"document": document})
        proofs = document["proof"] if isinstance(document["proof"], list) else [document["proof"]]
        self.ok(f"installed at all four nodes: {len(proofs)} of {len(document['members'])} proofs, threshold "
                f"{document['threshold']}, hash {installed['hash'][:16]}…")
        self.artefacts["membership"] = document

    def agreement(self) -> dict:
        self.step(f"Mutual-recognition agreement {self.origin_id} → {self.destination_id} (propose + sign)")
        agreement = self.negotiate()
        self.artefacts["agreement"] = agreement
        return agreement

    def negotiate(self) -> dict:
        """Propose at the origin, sign at the destination (federation.agreements' admin API): two signed peer
        messages (`agreement.propose`, `agreement.sign`) carried by the nodes' outboxes; the agreement is in force
        once every party's proof is on the same version hash."""
        from config.settings import load_region

        path = "/api/v1/federation/agreements"
        origin, dest = self.origin, self.destination
        course, certificate = self.claims()
        agreement_id = f"urn:creditnode:agreement:{origin.region}-{dest.region}:{dt.date.today().year}"
        draft = {
            "agreement": agreement_id,
            "title": f"{load_region(origin.region).name_zh} — {load_region(dest.region).name_zh} 学分互认协议",
            "parties": [origin.region, dest.region],
            "scope": {"achievement_types": ["degree_course", "self_study_course", "vocational_qualification"]},
            "credit_equivalence": {r: {"hours_per_credit": str(load_region(r).hours_per_credit)}
                                   for r in (origin.region, dest.region)},
            "mappings": [
                {"from": {"node": origin.region, "achievement_type": "degree_course", "code": course["code"]},
                 "to": {"code": DEST_COURSE["code"], "title": DEST_COURSE["title"], "credits": None}},
                # the national certificate at the same level: no credits of its own; the destination's
                # conversion rules (双证融通) then turn it into course credits
                {"from": {"node": origin.region, "achievement_type": "vocational_qualification",
                          "code": certificate["code"], "level": certificate["level"]},
                 "to": {"code": certificate["code"], "title": certificate["title"], "level": certificate["level"],
                        "credits": "0"}},
            ],
            "recognition": "automatic",
            "valid_from": (dt.date.today() - dt.timedelta(days=1)).isoformat(),
            "valid_to": None,
        }
        proposed = self.call(origin, "POST", path, as_="fedadmin", json=draft)
        self.ok(f"{origin.region} proposed version {proposed['version']} (hash {proposed['hash'][:16]}…), "
                f"signed by {', '.join(proposed['signers'])}")
        at_dest = self.wait_for(dest, f"{path}/{agreement_id}", lambda view: any(
            v["hash"] == proposed["hash"] for v in view["history"]), "the proposal to reach " + dest.region)
        self.ok(f"{dest.region} received it (message 1: agreement.propose) and verified the chain: "
                f"{'ok' if at_dest['verification']['ok'] else at_dest['verification']['problems']}")
        signed = self.call(dest, "POST", f"{path}/{agreement_id}/sign", as_="fedadmin",
                           json={"hash": proposed["hash"]})
        self.ok(f"{dest.region} signed the same hash: complete = {signed['complete']}")
        at_origin = self.wait_for(origin, f"{path}/{agreement_id}", lambda view: any(
            v["hash"] == proposed["hash"] and v["complete"] for v in view["history"]),
            "the signature to reach " + origin.region)
        versions = at_origin["verification"]["versions"]
        self.ok(f"{origin.region} received the signature (message 2: agreement.sign): signers "
                f"{', '.join(versions[-1]['signers'])}; active from {draft['valid_from']}")
        if not at_origin["verification"]["ok"]:
            raise DemoError(f"the agreement history does not verify: {at_origin['verification']['problems']}")
        return signed["document"]

    def wait_for(self, node: DemoNode, path: str, done: Callable[[dict], bool], what: str) -> dict:
        """Poll an admin GET until `done(view)`: peer messages travel through the outbox, flushed every few
        seconds by the node's scheduler."""
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        while True:
            view = self.call(node, "GET", path, as_="fedadmin", expect=(200, 404))
            if isinstance(view, dict) and "history" in view and done(view):
                return view
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {RECEIPT_TIMEOUT:.0f} s waiting for {what}")
            time.sleep(0.25)

    def claims(self) -> list[dict]:
        """The learner's two outcomes at the origin: a university course and a vocational qualification."""
        issuer = ORIGIN_ISSUERS.get(self.origin_id, ("U001", "开放大学"))
        return [
            {"type": "degree_course", "issuer_code": issuer[0], "issuer_name": issuer[1], "code": "MATH101",
             "title": "高等数学", "credits": "4", "hours": "64", "score": "88", "earned_on": "2025-01-15"},
            {"type": "vocational_qualification", "issuer_code": "OSTA", "issuer_name": "职业技能鉴定中心",
             "code": CERTIFICATE["code"], "title": CERTIFICATE["title"], "level": CERTIFICATE["level"],
             "certificate_no": "3306002024091234", "score": "合格", "earned_on": "2024-09-20"},
        ]

    def deposit(self) -> dict:
        origin = self.origin
        self.step(f"A learner deposits two outcomes at {origin.region} (two-stage review each)")
        id_number = _synthetic_id_number()
        person = {"id_number": id_number, "name": "王小明", "password": demo_password()}
        account = self.register(origin, person)
        self.ok(f"registered online (pending, reference {account['reference']}); the outlet checked the ID card → "
                f"account {account['account_no']} (ID number stored encrypted, shown as "
                f"{account['id_number_masked']}; pseudonym {account['pseudonym']})")
        achievement_ids = self.deposit_claims(origin, self.claims())
        self.sign_ins.add(origin.region, "learner", account["account_no"], person["password"],
                          f"{len(achievement_ids)} records; consent for {self.destination_id}")
        dest = self.destination
        other = self.call(dest, "POST", "/api/v1/learners", as_="outlet", expect=201,
                          json={"id_number": id_number, "name": person["name"]})
        code = self.call(dest, "POST", f"/api/v1/learners/{other['id']}/activation-code", as_="outlet", expect=201)
        password = demo_password()
        self.call(dest, "POST", "/api/v1/learners/activate", expect=200,
                  json={"id_number": id_number, "code": code["code"], "new_password": password})
        self.sign_in(dest, "learner", other["account_no"], password)
        self.sign_ins.add(dest.region, "learner", other["account_no"], password,
                          f"records transferred from {origin.region}; conversions")
        self.ok(f"the learner moves to {dest.region}: an outlet opens account {other['account_no']} and hands over "
                f"an activation code; the learner activates it with their ID number")
        return {"achievement_ids": achievement_ids, "id_number": id_number}

    def register(self, node: DemoNode, person: dict) -> dict:
        """Online registration, then the outlet checks the ID card (the account opens); signs the learner in."""
        pending = self.call(node, "POST", "/api/v1/learners/register", expect=202, json=person)
        account = self.call(node, "POST", "/api/v1/learners/registrations/verify", as_="outlet", expect=201,
                            json={"reference": pending["reference"], "id_number": person["id_number"]})
        self.sign_in(node, "learner", person["id_number"], person["password"])
        return {**account, "reference": pending["reference"]}

    def deposit_claims(self, node: DemoNode, claims: list[dict]) -> list[int]:
        """The signed-in learner applies with evidence for each claim; branch and centre approve each."""
        origin = node
        achievement_ids = []
        for claim in claims:
            app = self.call(origin, "POST", "/api/v1/me/deposit-applications", as_="learner", expect=201,
                            json={"achievement": claim})
            self.call(origin, "POST", f"/api/v1/me/deposit-applications/{app['id']}/evidence", as_="learner",
                      expect=201, files={"file": ("evidence.pdf", PDF, "application/pdf")})
            app = self.call(origin, "GET", f"/api/v1/me/deposit-applications/{app['id']}", as_="learner")
            app = self.call(origin, "POST", f"/api/v1/me/deposit-applications/{app['id']}/submit", as_="learner",
                            json={"version": app["version"]})
            states = []
            for reviewer in ("branch", "centre"):
                app = self.call(origin, "POST", f"/api/v1/deposit-applications/{app['id']}/decision",
                                as_=reviewer, json={"decision": "approve", "reason": "材料核验无误",
                                                    "version": app["version"]})
                states.append(f"{reviewer} review approved → {app['state']}")
            if not app.get("achievement_id"):
                raise DemoError(f"the deposit did not produce an achievement: {app}")
            what = f"{claim['credits']} credits" if claim.get("credits") else f"level {claim['level']}"
            self.ok(f"deposited: {claim['title']} ({claim['code']}), {what} → achievement "
                    f"{app['achievement_id']} ({'; '.join(states)})")
            achievement_ids.append(app["achievement_id"])
        return achievement_ids

    def learners_elsewhere(self) -> None:
        """Before the nodes are left running: at the regions the scenario did not use, a learner with a record
        (registered, ID checked at the outlet, one course result through both reviews), to sign in as."""
        others = [n for n in self.nodes.values() if n.region not in (self.origin_id, self.destination_id)]
        if not others:
            return
        self.step("A learner with records at " + " and ".join(n.region for n in others) + " (for the portal)")

        def learner(node: DemoNode) -> None:
            code, name = ORIGIN_ISSUERS[node.region]
            person = {"id_number": _synthetic_id_number(), "name": "李华", "password": demo_password()}
            account = self.register(node, person)
            claim = {"type": "degree_course", "issuer_code": code, "issuer_name": name, "code": "MATH101",
                     "title": "高等数学", "credits": "4", "hours": "64", "score": "90", "earned_on": "2025-06-30"}
            ids = self.deposit_claims(node, [claim])
            self.sign_ins.add(node.region, "learner", account["account_no"], person["password"],
                              f"{len(ids)} record")

        with ThreadPoolExecutor(max_workers=len(others)) as pool:
            list(pool.map(learner, others))

    def consent(self, learner: dict) -> dict:
        self.step(f"Consent at {self.origin_id}, bound to the learner's account at {self.destination_id}")
        intent = self.call(self.destination, "POST", "/api/v1/me/transfer-intents", as_="learner", expect=201,
                           json={"origin": self.origin_id})
        self.ok(f"{self.destination_id} issued a holder binding ({intent['binding'][:14]}…)")
        view = self.call(self.origin, "POST", "/api/v1/me/consents", as_="learner", expect=201, json={
            "destination": self.destination_id, "achievement_ids": learner["achievement_ids"],
            "purpose": "跨省学分互认（升学）", "valid_days": 30, "holder_binding": intent["binding"]})
        document = view["document"]
        self.ok(f"signed consent {document['id']} (eddsa-jcs-2022 by {self.origin_id}), expires {view['expires_at']}")
        self.artefacts["consent"] = document
        return document

    def transfer(self, learner: dict, consent: dict) -> dict:
        self.step(f"Transfer at {self.destination_id}: pull, verify, recognise")
        view = self.call(self.destination, "POST", "/api/v1/me/transfers", as_="learner", expect=201,
                         json={"consent": consent})
        full = self.call(self.destination, "GET", f"/api/v1/me/transfers/{view['id']}", as_="learner")
        cp = full["verification"]["checkpoint"]
        self.ok(f"{self.origin_id}'s signed checkpoint verified: tree size {cp['size']}, root {cp['root'][:16]}…")
        table = Table(show_header=True, header_style="bold")
        for column in ("origin credential", "check", "result"):
            table.add_column(column)
        for item in full["items"]:
            for check in item["checks"]:
                mark = {True: "[green]ok[/green]", False: "[red]FAIL[/red]", None: "--"}[check["ok"]]
                table.add_row(item["credential_id"].rsplit("/", 2)[-1], check["check"],
                              f"{mark} {check['reason']}")
        self.console.print(table)
        for item in full["items"]:
            rec = item.get("recognition") or {}
            self.ok(f"{item['state']}: {item['credential_id']} → {rec.get('code')} {rec.get('title')} "
                    f"{rec.get('credits')} credits ({rec.get('explanation') or ''})")
        self.console.print(f"\n    [bold green]recognised credits: {full['recognised_credits']}[/bold green] "
                           f"(agreement {full['agreement_id']}, hash {str(full['agreement_hash'])[:16]}…)")
        if full["state"] != "completed" or Decimal(full["recognised_credits"]) <= 0:
            raise DemoError(f"the transfer did not complete with recognised credits: {full['state']}")
        self.artefacts["transfer"] = full
        return full

    def convert(self) -> dict | None:
        """The destination's own rules (issue 4's engine) on what it recognised: the learner asks for conversion
        into a programme, outlet staff confirm the engine's proposal, a reviewer approves; each converted course
        cites its rule and version and is a ledger event."""
        programme = CONVERSION_PROGRAMME.get(self.destination_id)
        if programme is None:
            return None
        dest = self.destination
        self.step(f"Conversion at {dest.region} under its own rules: the recognised certificate → {programme}")
        request = self.call(dest, "POST", "/api/v1/me/conversions", as_="learner", expect=201,
                            json={"programme": programme})
        if not request["items"]:
            raise DemoError(f"{dest.region}'s rules proposed nothing for {programme}: {request}")
        self.ok(f"the engine proposed {len(request['items'])} items (request {request['id']}, {request['state']})")
        request = self.call(dest, "POST", f"/api/v1/conversions/{request['id']}/confirm", as_="outlet",
                            json={"version": request["version"]})
        self.ok(f"outlet staff confirmed the proposal → {request['state']}")
        decisions = [{"item_id": i["id"], "decision": "approve", "reason": "证书经跨省互认核验"}
                     for i in request["items"]]
        request = self.call(dest, "POST", f"/api/v1/conversions/{request['id']}/review", as_="centre",
                            json={"version": request["version"], "decisions": decisions})
        total = Decimal(0)
        for item in request["items"]:
            target = item["target"]
            self.ok(f"{item['status']}: {target.get('code') or item['target_key']} {target.get('name') or ''}, "
                    f"{item['credits']} credits, grade {item['recorded_grade']} — rule {item['rule_id']} "
                    f"v{item['rule_version']}, ledger event {item['ledger_seq']}")
            if item["status"] == "approved":
                total += Decimal(str(item["credits"]))
        self.console.print(f"\n    [bold green]converted credits: {total.normalize():f}[/bold green] "
                           f"({programme}, request {request['state']})")
        if total <= 0:
            raise DemoError(f"the conversion recorded no credits: {request}")
        self.artefacts["conversion"] = request
        return request

    def receipt(self, learner: dict, consent: dict) -> dict:
        self.step(f"Receipt: {self.destination_id} → {self.origin_id} (reliable outbox, recorded in the ledger)")
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        while True:
            listed = self.call(self.origin, "GET", "/api/v1/me/consents", as_="learner")
            found = [c for c in listed if c["consent_id"] == consent["id"] and c["receipts"]]
            if found:
                receipt = found[0]["receipts"][0]
                break
            if time.monotonic() > deadline:
                raise DemoError(f"no receipt at {self.origin_id} after {RECEIPT_TIMEOUT:.0f} s")
            time.sleep(0.25)
        event = self.call(self.origin, "GET", f"/api/v1/ledger/events/{receipt['ledger_seq']}")
        self.ok(f"{self.origin_id} recorded receipt {receipt['receipt_id']} as ledger event {receipt['ledger_seq']} "
                f"({json.loads(event['leaf'])['kind']})")
        self.artefacts["receipt"] = receipt["document"]
        return receipt["document"]

    def verify(self, transfer: dict, consent: dict, receipt: dict, agreement: dict) -> list[tuple[str, bool, str]]:
        """Independent checks from published material only: DID documents, status list, checkpoint."""
        from crypto.dataintegrity import verify as di_verify
        from crypto.did import resolve_verification_method
        from crypto.merkle import verify_inclusion
        from crypto.note import NoteVerifier, parse_checkpoint, split_note, verify_note
        from node.credentials.verify import verify_document

        self.step("Independent verification (DID documents, status list, checkpoint)")
        dids = {node.region: self.call(node, "GET", "/.well-known/did.json") for node in self.nodes.values()}
        self.artefacts["dids"] = dids
        by_did = {d["id"]: d for d in dids.values()}
        checks: list[tuple[str, bool, str]] = []

        def resolver(did_doc: dict) -> Callable[[str], Any]:
            return lambda vm: resolve_verification_method(did_doc, vm).public_key

        origin_doc, dest_doc = dids[self.origin_id], dids[self.destination_id]
        checks.append(("consent proof", di_verify(consent, resolver(origin_doc)).ok, f"by {self.origin_id}"))
        checks.append(("receipt proof", di_verify(receipt, resolver(dest_doc)).ok, f"by {self.destination_id}"))
        if isinstance(agreement.get("proof"), (list, dict)):
            result = di_verify(agreement, lambda vm: resolve_verification_method(
                by_did[vm.split("#", 1)[0]], vm).public_key)
            checks.append(("agreement proofs", result.ok, f"{len(result.proofs)} party proofs"))
        note = transfer["checkpoint"]
        text, _ = split_note(note)
        name = text.split("\n", 1)[0]
        verified = verify_note(note, [NoteVerifier(name, resolve_verification_method(origin_doc, vm["id"],
                                                                                     purpose=None).public_key)
                                      for vm in origin_doc["verificationMethod"]])
        checkpoint = parse_checkpoint(verified.text)
        checks.append(("checkpoint signature", True, f"{name} size {checkpoint.size}"))
        status_url = None
        for credential in transfer["credentials"]:
            status_url = credential["credentialStatus"]["statusListCredential"]
            status = self.http.get(status_url).json()
            report = verify_document(credential, resolve_did=by_did.get, fetch_status={status_url: status}.get)
            checks.append(("credential", report.valid, f"{credential['id']} (signature, dates, status)"))
            bank = credential["credentialSubject"]["creditBank"]
            proof = self.call(self.origin, "GET", f"/api/v1/ledger/proof/inclusion?seq={bank['ledgerSequence']}"
                                                  f"&size={checkpoint.size}")
            try:
                verify_inclusion(bytes.fromhex(bank["ledgerLeafHash"]), bank["ledgerSequence"], checkpoint.size,
                                 [bytes.fromhex(h) for h in proof["proof"]], checkpoint.root_hash)
                checks.append(("inclusion", True, f"ledger event {bank['ledgerSequence']} under the checkpoint"))
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                checks.append(("inclusion", False, str(exc)))
            self.artefacts["status_list"] = status
        for what, passed, detail in checks:
            (self.ok if passed else self.console.print)(f"{what}: {'ok' if passed else '[red]FAIL[/red]'} — {detail}")
        if not all(passed for _, passed, _ in checks):
            raise DemoError("an independent check failed")
        return checks

    def export(self, transfer: dict, consent: dict, receipt: dict, agreement: dict) -> None:
        out = self.export_dir
        out.mkdir(parents=True, exist_ok=True)
        files: list[dict] = []

        def write(name: str, content: Any, what: str) -> None:
            data = content if isinstance(content, bytes) else content.encode("utf-8") if isinstance(content, str) \
                else (json.dumps(content, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
            (out / name).write_bytes(data)
            files.append({"file": name, "what": what, "sha256": hashlib.sha256(data).hexdigest()})

        for region, doc in self.artefacts["dids"].items():
            write(f"did-{region}.json", doc, f"DID document of the {region} node ({doc['id']})")
        for index, credential in enumerate(transfer["credentials"], 1):
            write(f"credential-{index}.json", credential, f"signed credential released by {self.origin_id}")
        write("consent.json", consent, f"the learner's signed consent (by {self.origin_id})")
        write("agreement.json", agreement, f"the signed agreement {self.origin_id} → {self.destination_id}")
        write("membership.json", self.artefacts["membership"], "the founding membership signed by all four")
        write(f"checkpoint-{self.origin_id}.txt", transfer["checkpoint"],
              f"{self.origin_id}'s signed checkpoint (C2SP note) the inclusion proofs refer to")
        write(f"status-list-{self.origin_id}.json", self.artefacts["status_list"],
              f"{self.origin_id}'s signed status list")
        write("receipt.json", receipt, f"{self.destination_id}'s signed receipt, recorded by {self.origin_id}")
        if self.artefacts.get("conversion"):
            write("conversion.json", self.artefacts["conversion"],
                  f"the conversion at {self.destination_id}: items with the rule and version each cites")
        write("transfer.json", {k: v for k, v in transfer.items() if k != "credentials"},
              f"the transfer at {self.destination_id}: checks, recognitions")
        self.export_learner_documents(write, transfer)
        manifest = {"generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "origin": self.origin_id, "destination": self.destination_id,
                    "recognised_credits": transfer["recognised_credits"], "files": files}
        (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
        self.ok(f"{len(files)} files and manifest.json written to {out}")


    def export_learner_documents(self, write: Callable[[str, Any, str], None], transfer: dict) -> None:
        """The learner's own exports at the origin: each credential as an OB 3.0 AchievementCredential with both
        proofs (eddsa-jcs-2022, eddsa-rdfc-2022), and the printable transcript (成绩证明) PDF, checked here with
        the published DID documents alone."""
        from node.credentials.pdf import extract_presentation
        from node.credentials.verify import verify_document

        dids = {doc["id"]: doc for doc in self.artefacts["dids"].values()}
        learner = self.origin.tokens["learner"]
        achievement_ids = [c["id"].rsplit("/", 1)[1] for c in transfer["credentials"]]  # …/achievements/{id}
        for index, achievement_id in enumerate(achievement_ids, 1):
            credential = self.call(self.origin, "GET", f"/api/v1/me/credentials/{achievement_id}", as_="learner")
            write(f"export-credential-{index}.json", credential,
                  f"the learner's export from {self.origin_id}: OB 3.0, eddsa-jcs-2022 + eddsa-rdfc-2022 proofs")
        response = self.http.get(self.origin.base_url + "/api/v1/me/transcript",
                                 headers={**learner, "Accept": "application/pdf"})
        if response.status_code != 200 or not response.content.startswith(b"%PDF-"):
            raise DemoError(f"{self.origin_id}: the transcript PDF answered {response.status_code}")
        report = verify_document(extract_presentation(response.content), resolve_did=dids.get)
        if not report.valid:
            raise DemoError(f"the exported transcript PDF does not verify: {report.to_dict()}")
        write(f"transcript-{self.origin_id}.pdf", response.content,
              f"the learner's printable transcript (成绩证明) from {self.origin_id}, its signed presentation embedded "
              "(creditnode verify FILE --did-document did-….json)")
        self.ok(f"transcript PDF from {self.origin_id}: {len(report.credentials)} records, the embedded "
                "presentation verifies with the published DID document")


def run_demo(*, console: Console | None = None, data_dir: Path | None = None, keep_running: bool = False,
             export_dir: Path | None = None, origin: str = "zhejiang", destination: str = "shanghai",
             base_port: int | None = None) -> int:
    """Run the scenario; returns the process exit code (0: a verified transfer with recognised credits)."""
    console = console or Console()
    demo = Demo(console, data_dir=data_dir, origin=origin, destination=destination, export_dir=export_dir,
                base_port=base_port)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)  # even when started with SIGINT ignored (a background job)
    code, interrupted = 1, False
    try:
        result = demo.run()
        seconds = time.monotonic() - demo.started
        converted = ""
        if result.get("conversion"):
            total = sum(Decimal(str(i["credits"])) for i in result["conversion"]["items"] if i["status"] == "approved")
            converted = f", then {total.normalize():f} programme credits converted there under its own rules"
        console.print(f"\n[bold green]✓ verified cross-region transfer: {result['transfer']['recognised_credits']} "
                      f"credits recognised at {destination} from {origin}{converted}[/bold green] ({seconds:.1f} s)")
        code = 0
        if keep_running:
            demo.watch()  # until Ctrl-C
    except DemoError as exc:
        console.print(f"\n[bold red]demo failed:[/bold red] {escape(str(exc))}", highlight=False)
        for node in demo.nodes.values():
            if node.log_path is not None and node.log_path.exists():
                console.print(f"    log of {node.region}: {node.log_path}")
    except KeyboardInterrupt:
        console.print("\ninterrupted: stopping the nodes")
        code = 130 if code else 0
        interrupted = True
    finally:
        demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        started = any(n.process is not None for n in demo.nodes.values())
        if code == 0 or interrupted or not started:
            demo.cleanup()
        elif demo._own_tmp:
            console.print(f"    (kept {demo.root} with the nodes' logs for inspection)")
    return code


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt
