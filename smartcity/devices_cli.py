"""``smartcity devices import|export``: the registry from and to CSV or YAML files, through the HTTP API.

Import reads UTF-8 or, failing that, GB18030 (``devices.importing.read_file``, saying so), reports every bad row
with its line and field, imports the good rows anyway, writes the credentials of the devices it created to a file
only the caller can read (they are shown nowhere else), and exits 1 if any row was bad. Export writes text cells a
spreadsheet would run as formulas with a ``'`` before them, which import takes off again. The token comes from
``--token``, ``SMARTCITY_API_TOKEN``, or the one-machine stack's secrets file.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from core.contracts.device import Device
from core.secrets import saved_secrets
from devices.importing import read_file, write_csv, write_yaml

devices_app = typer.Typer(no_args_is_help=True, help="The device registry: import and export.")
console = Console(stderr=True)

ApiOption = Annotated[str, typer.Option(envvar="SMARTCITY_API_URL", help="the API's base URL")]
TokenOption = Annotated[str | None, typer.Option(envvar="SMARTCITY_API_TOKEN", help="bearer token")]
DataDirOption = Annotated[Path, typer.Option(envvar="SMARTCITY_DATA_DIR", help="where secrets.json is")]


def _token(token: str | None, data_dir: Path) -> str:
    token = token or saved_secrets(data_dir).get("api_token")
    if token:
        return str(token)
    console.print("[red]error:[/] no API token: pass --token, set SMARTCITY_API_TOKEN, or run on the stack's machine")
    raise typer.Exit(2)


@devices_app.callback()
def _connection(
    ctx: typer.Context,
    api: ApiOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    data_dir: DataDirOption = Path(".smartcity"),
) -> None:
    """Where the API is and the token to use, for every devices command."""
    ctx.obj = (api, token, data_dir)


def _client(ctx: typer.Context, timeout: float) -> httpx.Client:
    api, token, data_dir = ctx.obj
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {_token(token, data_dir)}"}, timeout=timeout)


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


@devices_app.command("import")
def import_devices(
    ctx: typer.Context,
    file: Path,
    credentials_out: Annotated[Path | None, typer.Option(help="where new devices' credentials go")] = None,
    chunk: int = 1000,
) -> None:
    """Import devices from a CSV or YAML file (thousands of rows)."""
    result = read_file(file.read_bytes(), yaml=_is_yaml(file))
    if result.encoding != "utf-8":
        console.print(
            f"[yellow]note:[/] {file} is not UTF-8: read as {result.encoding.upper()} (what Excel saves as CSV on a "
            'zh-CN desktop); if the names come out wrong, save the file as "CSV UTF-8"'
        )
    for error in result.errors:
        console.print(f"[red]{file}:{error.line}[/] {error.field}: {error.message}")
    out = credentials_out or Path(f"credentials-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    if out.exists():
        console.print(f"[red]error:[/] {out} exists; new credentials are never written over old ones")
        raise typer.Exit(2)
    started = time.monotonic()
    created = replaced = new_without_credentials = 0
    writer: Any = None
    with contextlib.ExitStack() as stack, _client(ctx, 600) as http:
        for start in range(0, len(result.devices), chunk):
            batch = result.devices[start : start + chunk]
            response = http.post("/api/devices/import", json=[d.model_dump(mode="json") for d in batch])
            if response.status_code != 200:
                console.print(f"[red]error:[/] the API refused the import: {response.status_code} {response.text}")
                raise typer.Exit(2)
            for saved in response.json():
                if not saved["created"]:
                    replaced += 1
                elif "credentials" not in saved:
                    new_without_credentials += 1
                else:
                    if writer is None:  # written as they come: a later failure must not lose earlier passwords
                        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        writer = csv.writer(stack.enter_context(os.fdopen(fd, "w", newline="")))
                        writer.writerow(["username", "password"])
                    writer.writerow([saved["credentials"]["username"], saved["credentials"]["password"]])
                    created += 1
    elapsed = time.monotonic() - started
    if created:
        console.print(f"credentials of {created} new devices written to {out} (shown nowhere else)")
    rate = len(result.devices) / elapsed if elapsed > 0 else 0.0
    console.print(
        f"imported {len(result.devices)} devices ({created + new_without_credentials} new, {replaced} replaced) "
        f"in {elapsed:.1f} s "
        f"({rate:.0f}/s); {len(result.errors)} bad rows"
    )
    if result.errors:
        raise typer.Exit(1)


@devices_app.command("export")
def export_devices(ctx: typer.Context, file: Path) -> None:
    """Export every device to a CSV or YAML file (by its extension)."""
    devices: list[Device] = []
    with _client(ctx, 60) as http:
        while True:
            page = http.get("/api/devices", params={"offset": len(devices), "limit": 1000})
            page.raise_for_status()
            body = page.json()
            devices.extend(Device.model_validate(d) for d in body["devices"])
            if not body["devices"] or len(devices) >= body["total"]:
                break
    file.write_text(write_yaml(devices) if _is_yaml(file) else write_csv(devices), encoding="utf-8")
    console.print(f"exported {len(devices)} devices to {file}")
