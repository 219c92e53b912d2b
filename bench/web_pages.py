"""Web pages benchmark: server time per page of the web app on a loaded demo retailer.

Starts `accord serve` on an ACCORD_HOME that holds a loaded demo (generating and loading one first when the
directory is empty), logs in as a marketer and as an associate, and requests every page for a sample of real
customers. The server time is the page's own `Server-Timing: app;dur=...` header (from the session check in the
guard to the rendered body); the client time (loopback HTTP included) is shown beside it. Results go to
bench/results/web_pages.json; docs/benchmarks.md has the numbers and the method.

    .venv/bin/python bench/web_pages.py                         # 100,000 customers in bench/results/web-demo-100k
    .venv/bin/python bench/web_pages.py --customers 10000 --home /tmp/demo10k --samples 20
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PASSWORD = "bench-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_TIMING = re.compile(r"app;dur=([0-9.]+)")
PREVIEW_RULES = (
    "name: p1\nrule:\n  event: Order Completed\n  within: 30d\n",
    "name: p2\nrule:\n  event: Order Completed\n  channel: store\n  within: 365d\n  count: {gte: 2}\n",
    "name: p3\nrule:\n  all:\n    - event: Product Added\n      within: 7d\n"
    "    - not:\n        event: Order Completed\n        within: 7d\n",
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accord(home: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    env = {**os.environ, "ACCORD_HOME": str(home)}
    done = subprocess.run([str(BIN / "accord"), *args], input=stdin, text=True, capture_output=True, env=env)
    if check and done.returncode != 0:
        raise SystemExit(f"accord {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def sample(home: Path, n: int, seed: int) -> dict[str, Any]:
    """Emails and loyalty cards of real customers, and a store with till receipts."""
    engine = sa.create_engine(f"sqlite:///{home / 'state.sqlite'}")
    with engine.connect() as conn:
        emails = [r[0] for r in conn.execute(sa.text("SELECT value FROM identifiers WHERE type = 'email'"))]
        cards = [r[0] for r in conn.execute(sa.text("SELECT value FROM identifiers WHERE type = 'loyalty_card'"))]
        profiles = conn.execute(sa.text("SELECT count(DISTINCT profile_id) FROM identifiers")).scalar_one()
    engine.dispose()
    rng = random.Random(seed)
    return {
        "emails": rng.sample(sorted(emails), min(n, len(emails))),
        "cards": rng.sample(sorted(cards), min(n, len(cards))),
        "profiles": profiles,
    }


class Server:
    """`accord serve` on HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ACCORD_HOME": str(home), "ACCORD_PORT": str(self.port)}
        self.log = open(home / "bench-server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([str(BIN / "accord"), "serve"], env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("server did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def login(url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=True)
    page = client.get("/login")
    token = _CSRF.search(page.text)
    assert token
    done = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert done.status_code == 200, done.status_code
    return client


def timed(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> tuple[float, float, str]:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    client_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code)
    server = _TIMING.search(response.headers.get("server-timing", ""))
    assert server, f"no Server-Timing on {path}"
    return float(server.group(1)), client_ms, response.text


def followed(client: httpx.Client, record: Any, path: str, what: str) -> float:
    """Request figures computed in the background as the browser does: the first request, the progress notes
    that ask again every second until the figures are there, then three requests of the computed figures;
    returns the wall time until the figures were there (ms)."""
    started = time.perf_counter()
    server_ms, client_ms, text = timed(client, path, {"HX-Request": "true"})
    record(f"{what}, first request (starts the computation)", server_ms, client_ms)
    while 'id="figures-pending"' in text:
        time.sleep(1.0)
        server_ms, client_ms, text = timed(client, path, {"HX-Request": "true"})
        record(f"{what}, progress note while computing", server_ms, client_ms)
    wall_ms = (time.perf_counter() - started) * 1000
    for _ in range(3):
        record(f"{what}, once computed", *timed(client, path)[:2])
    return wall_ms


def insight_pages(marketer: httpx.Client, record: Any, emails: list[str]) -> None:
    """Lift against holdouts, customer value and churn risk, loyalty programme and ledgers (first request computes,
    later ones are cached for lift and value)."""
    record("lift page (figures load by htmx)", *timed(marketer, "/analytics/lift")[:2])
    followed(marketer, record, "/analytics/lift/figures?window=7d", "lift figures")
    record("customer value page (figures load by htmx)", *timed(marketer, "/analytics/value")[:2])
    followed(marketer, record, "/analytics/value/figures", "customer value figures")
    for _ in range(3):
        record("loyalty programme", *timed(marketer, "/loyalty")[:2])
    for email in emails:
        match = re.search(r'href="/customers/([0-9A-Z]{26})"', marketer.get(f"/customers?q={email}").text)
        if match:
            record("loyalty ledger of a customer", *timed(marketer, f"/loyalty/customers/{match.group(1)}")[:2])


def run(home: Path, samples: int, seed: int) -> dict[str, Any]:
    picked = sample(home, samples, seed)
    stores_file = home / "demo-data" / "stores.json"
    store = json.loads(stores_file.read_text())[0]["store_id"] if stores_file.exists() else "st-waw-01"
    accord(home, "users", "add", "bench-marketer@example.com", "--role", "marketer", stdin=PASSWORD, check=False)
    accord(home, "users", "add", "bench-clerk@example.com", "--role", "associate", "--store", store,
           stdin=PASSWORD, check=False)  # fmt: skip
    server = Server(home)
    results: dict[str, dict[str, list[float]]] = {}

    def record(page: str, server_ms: float, client_ms: float) -> None:
        entry = results.setdefault(page, {"server": [], "client": []})
        entry["server"].append(server_ms)
        entry["client"].append(client_ms)

    cpu_before = server.cpu_seconds()
    wall_before = time.perf_counter()
    try:
        marketer = login(server.url, "bench-marketer@example.com")
        associate = login(server.url, "bench-clerk@example.com")
        record("overview, first request (computes the figures)", *timed(marketer, "/?days=31")[:2])
        for _ in range(max(3, samples // 4)):
            record("overview, later requests (cached figures)", *timed(marketer, "/?days=31")[:2])
        for email in picked["emails"]:
            server_ms, client_ms, text = timed(marketer, f"/customers?q={email}")
            record("customer search by email", server_ms, client_ms)
            match = re.search(r'href="/customers/([0-9A-Z]{26})"', text)
            if not match:
                continue
            pid = match.group(1)
            server_ms, client_ms, text = timed(marketer, f"/customers/{pid}")
            record("customer profile (50 newest events)", server_ms, client_ms)
            record("customer profile, web channel only", *timed(marketer, f"/customers/{pid}?channel=web")[:2])
            more = re.search(r'hx-get="([^"]+)"', text)
            if more:
                path = more.group(1).replace("&amp;", "&")
                record("timeline next page (htmx)", *timed(marketer, path, {"HX-Request": "true"})[:2])
        record("associate screen", *timed(associate, f"/store/{store}")[:2])
        for _ in range(3):
            record("segments list", *timed(marketer, "/segments")[:2])
            text = timed(marketer, "/segments")[2]
            saved = [name for name in re.findall(r'href="/segments/([a-z0-9_-]+)"', text) if name != "new"]
            if saved:
                record("segment editor (saved segment, size history)", *timed(marketer, f"/segments/{saved[0]}")[:2])
            record("journeys list", *timed(marketer, "/journeys")[:2])
            record("journey flow (abandoned-cart)", *timed(marketer, "/journeys/abandoned-cart")[:2])
            record(
                "journey editor (abandoned-cart YAML, diagram)", *timed(marketer, "/journeys/abandoned-cart/edit")[:2]
            )
            record("template editor (new template)", *timed(marketer, "/messages/templates/new")[:2])
            server_ms, client_ms, text = timed(marketer, "/messages")
            record("messages (templates, broadcasts)", server_ms, client_ms)
            sent = re.findall(r'href="/messages/broadcasts/([0-9A-Za-z]{26})"', text)
            if sent:
                record("broadcast report (funnel)", *timed(marketer, f"/messages/broadcasts/{sent[0]}")[:2])
            record("segment editor (new segment)", *timed(marketer, "/segments/new")[:2])
            record("analytics page (figures load by htmx)", *timed(marketer, "/analytics")[:2])
            record("commerce stores", *timed(marketer, "/commerce")[:2])
            record("commerce store (pickups, stock)", *timed(marketer, f"/commerce/stores/{store}")[:2])
        # the first request starts the seven models in the background and answers with a progress note that asks
        # again every second (as the browser's htmx does) until the figures are there
        started = time.perf_counter()
        server_ms, client_ms, text = timed(marketer, "/analytics/figures?window=30d", {"HX-Request": "true"})
        record("analytics figures, first request (starts the 7 models)", server_ms, client_ms)
        while 'id="figures-pending"' in text:
            time.sleep(1.0)
            server_ms, client_ms, text = timed(marketer, "/analytics/figures?window=30d", {"HX-Request": "true"})
            record("analytics figures, progress note while computing", server_ms, client_ms)
        figures_wall_ms = (time.perf_counter() - started) * 1000
        for _ in range(3):
            record("analytics figures, later requests (cached)", *timed(marketer, "/analytics/figures?window=30d")[:2])
        insight_pages(marketer, record, picked["emails"][:samples])
        page = marketer.get("/segments/new")
        token = _CSRF.search(page.text)
        assert token
        for rule in PREVIEW_RULES:
            started = time.perf_counter()
            answer = marketer.post(
                "/segments/preview",
                data={"definition": rule},
                headers={"HX-Request": "true", "X-CSRF-Token": token.group(1)},
            )
            client_ms = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200 and "preview-count" in answer.text, answer.text[:300]
            timing = _TIMING.search(answer.headers.get("server-timing", ""))
            assert timing
            record("segment live count (htmx, full evaluation)", float(timing.group(1)), client_ms)
        editor = marketer.get("/journeys/abandoned-cart/edit").text
        yaml_text = re.search(r'<textarea id="definition"[^>]*>(.*?)</textarea>', editor, re.S)
        live_checks = [
            ("/journeys/preview", {"definition": html.unescape(yaml_text.group(1)) if yaml_text else ""}, "journey-ok"),
            ("/messages/templates/preview", {"name": "b", "v|en|sms|text": "Hi {{ first_name }}"}, "preview-for"),
        ]
        for path, form, marker in live_checks * 3:
            started = time.perf_counter()
            answer = marketer.post(path, data=form, headers={"HX-Request": "true", "X-CSRF-Token": token.group(1)})
            client_ms = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200 and marker in answer.text, answer.text[:300]
            timing = _TIMING.search(answer.headers.get("server-timing", ""))
            assert timing
            record(f"{path.split('/')[1]} editor live check (htmx)", float(timing.group(1)), client_ms)
        for card in picked["cards"]:
            record(
                "associate lookup by card (htmx)",
                *timed(associate, f"/store/{store}/lookup?q={card}", {"HX-Request": "true"})[:2],
            )
        server_cpu = round(server.cpu_seconds() - cpu_before, 1)
        wall = round(time.perf_counter() - wall_before, 1)
    finally:
        server.stop()
    summary = {
        page: {
            "n": len(v["server"]),
            "server_median_ms": round(statistics.median(v["server"]), 1),
            "server_p95_ms": round(sorted(v["server"])[max(0, int(len(v["server"]) * 0.95) - 1)], 1),
            "server_max_ms": round(max(v["server"]), 1),
            "client_median_ms": round(statistics.median(v["client"]), 1),
        }
        for page, v in results.items()
    }
    return {
        "profiles": picked["profiles"],
        "store": store,
        "server_cpu_seconds": server_cpu,
        "wall_seconds": wall,
        "analytics_figures_ready_seconds": round(figures_wall_ms / 1000, 1),
        "pages": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=BENCH / "results" / "web-demo-100k")
    parser.add_argument("--customers", type=int, default=100_000, help="demo size when HOME has no demo yet")
    parser.add_argument("--samples", type=int, default=40, help="customers sampled per page")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    home: Path = args.home.resolve()
    if not (home / "demo.json").exists():
        log(f"loading a demo of {args.customers} customers into {home} (minutes)")
        accord(home, "demo", "--customers", str(args.customers), "--no-serve")
    result = run(home, args.samples, args.seed)
    out = BENCH / "results" / "web_pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"\n{result['profiles']:,} profiles; server time per page (ms), {args.samples} sampled customers; "
        f"server CPU {result['server_cpu_seconds']} s over {result['wall_seconds']} s of requests; analytics "
        f"figures ready {result['analytics_figures_ready_seconds']} s after the first request\n"
    )
    print("| page | n | server median | server p95 | server max | client median |")
    print("|---|---:|---:|---:|---:|---:|")
    for page, s in result["pages"].items():
        print(
            f"| {page} | {s['n']} | {s['server_median_ms']} | {s['server_p95_ms']} | {s['server_max_ms']} "
            f"| {s['client_median_ms']} |"
        )


if __name__ == "__main__":
    main()
