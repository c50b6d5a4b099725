"""``belegsync simulate``: run both simulators in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from simulators.suite import Simulators


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--gmi-port", default=8081, show_default=True, help="GMI port (0: any free port).")
@click.option(
    "--billomat-port", default=8082, show_default=True, help="Billomat port (0: any free port)."
)
@click.option(
    "--seed-demo/--no-seed-demo",
    default=True,
    show_default=True,
    help="Fill the demo account and tenant with documents.",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME[=SECONDS]",
    help="Switch one undocumented behaviour the other way; repeatable. --list-variants names them.",
)
@click.option(
    "--list-variants", is_flag=True, help="List the variants with what each does, then exit."
)
@click.option("--gmi-api-key", default="demo-gmi-key", show_default=True)
@click.option("--billomat-id", default="demo", show_default=True)
@click.option("--billomat-api-key", default="demo-billomat-key", show_default=True)
def simulate(
    host: str,
    gmi_port: int,
    billomat_port: int,
    seed_demo: bool,
    variants: tuple[str, ...],
    list_variants: bool,
    gmi_api_key: str,
    billomat_id: str,
    billomat_api_key: str,
) -> None:
    """Run the local GetMyInvoices and Billomat simulators.

    The demo account and tenant always exist (empty with --no-seed-demo); more can be created
    through each server's /_sim control endpoints (see simulators/README.md). Where the API
    documentation is silent the simulators settle a behaviour one way; --variant NAME settles
    it the other way (e.g. --variant inbox-metadata-dropped --variant gmi-listing-lag=10).
    """
    from simulators.suite import Simulators
    from simulators.variants import VARIANTS

    if list_variants:
        for variant in VARIANTS.values():
            click.echo(f"{variant.name:26} {variant.summary}")
        return
    try:
        sims = Simulators(
            host=host, gmi_port=gmi_port, billomat_port=billomat_port, variants=variants
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--variant") from None
    try:
        sims.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}: {e.strerror or e}") from e
    try:
        summary = None
        if seed_demo:
            summary = _seed(sims, gmi_api_key, billomat_id, billomat_api_key)
        else:
            sims.gmi.add_account(gmi_api_key)
            sims.billomat.add_tenant(billomat_id, billomat_api_key)
        # These keys belong to a throwaway local demo account, so printing them is intended.
        click.echo(
            f"GMI simulator:      {sims.gmi_base_url}  X-API-KEY: {gmi_api_key}  "
            f"(control: {sims.gmi.origin}/_sim)"
        )
        click.echo(
            f"Billomat simulator: {sims.billomat_url_template}  billomat id: {billomat_id}  "
            f"X-BillomatApiKey: {billomat_api_key}  (control: {sims.billomat.origin}/_sim)"
        )
        if summary:
            click.echo(summary)
        if sims.variants:
            click.echo(f"Variants: {', '.join(sims.variants)}")
        click.echo("Press Ctrl-C to stop.")
        _wait_for_signal()
    finally:
        sims.stop()


def _seed(sims: Simulators, gmi_api_key: str, billomat_id: str, billomat_api_key: str) -> str:
    from simulators.seed import seed_demo

    data = seed_demo(
        sims, gmi_api_key=gmi_api_key, billomat_id=billomat_id, billomat_api_key=billomat_api_key
    )
    docs = data["gmi"]["documents"]
    bill = data["billomat"]
    return (
        f"Seeded: {len(docs)} GMI documents (uids {docs[0]['uid']}–{docs[-1]['uid']}, "
        f"large PDF uid {data['gmi']['large_document_uid']}); Billomat "
        f"{len(bill['invoices'])} invoices, {len(bill['credit_notes'])} credit notes, "
        f"{len(bill['draft_invoices'])} draft invoice, {len(bill['clients'])} clients."
    )


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    simulate()
