"""Both simulators started and stopped together: what tests, benchmarks and the demo use."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

from simulators.billomat import BillomatSimulator
from simulators.gmi import GmiSimulator
from simulators.variants import apply_variants


class Simulators:
    """GMI and Billomat on two ports of one host; ``0`` picks free ports.

    ``variants`` switches undocumented behaviours the other way (names in ``variants.py``,
    ``"documented"`` for none; ``"gmi-listing-lag=3"`` gives a value).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        gmi_port: int = 0,
        billomat_port: int = 0,
        *,
        variants: Iterable[str] = (),
    ) -> None:
        self.gmi = GmiSimulator(host, gmi_port)
        self.billomat = BillomatSimulator(host, billomat_port)
        self.variants = apply_variants(variants, self.gmi.behaviour, self.billomat.behaviour)

    def start(self) -> Simulators:
        self.gmi.start()
        try:
            self.billomat.start()
        except BaseException:
            self.gmi.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.billomat.stop()
        finally:
            self.gmi.stop()

    def __enter__(self) -> Simulators:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def gmi_base_url(self) -> str:
        """``http://host:port/accounts/v3``."""
        return self.gmi.base_url

    @property
    def billomat_url_template(self) -> str:
        """``http://host:port/{billomat_id}/api`` with a literal ``{billomat_id}``."""
        return self.billomat.url_template
