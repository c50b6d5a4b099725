"""Both simulators started and stopped together: what tests, benchmarks and the demo use."""

from __future__ import annotations

from types import TracebackType

from simulators.billomat import BillomatSimulator
from simulators.gmi import GmiSimulator


class Simulators:
    """GMI and Billomat on two ports of one host; ``0`` picks free ports."""

    def __init__(self, host: str = "127.0.0.1", gmi_port: int = 0, billomat_port: int = 0) -> None:
        self.gmi = GmiSimulator(host, gmi_port)
        self.billomat = BillomatSimulator(host, billomat_port)

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
