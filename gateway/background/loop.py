"""Work a gateway or worker process does over and over in a thread of its own."""

import logging
import threading

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Calls `run_once` until stopped, pausing `interval` seconds whenever it found nothing
    to do. An error (the database away, say) is logged and the loop goes on."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self.stopping = threading.Event()

    def run_once(self) -> bool:
        """One round; True when it did something (then the next round follows at once)."""
        raise NotImplementedError

    def run_forever(self) -> None:
        log.info("%s %s started", type(self).__name__, self.name)
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except Exception:  # keep trying, do not die
                log.exception("%s %s: round failed", type(self).__name__, self.name)
                busy = False
            if not busy:
                self.stopping.wait(self.interval)
        log.info("%s %s stopped", type(self).__name__, self.name)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the loop to stop after the round in hand."""
        self.stopping.set()
