"""Progress of `fit` on stderr through tqdm, imported when a bar is wanted (not at
`import fastseq`). Without tqdm installed: one summary line per epoch."""
import sys


class EpochProgress:
    """One tqdm bar per epoch (`epoch 3/10 |####  | 40/100 [loss=0.0123]`).

    Parameters
    ----------
    epochs, batches : int
        Epochs to run and batches per epoch.
    enabled : bool
        False: report nothing.
    """

    def __init__(self, epochs: int, batches: int, enabled: bool = True):
        self.epochs, self.batches, self.enabled = epochs, batches, enabled
        self._bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm if enabled else None

    def start_epoch(self, epoch: int) -> None:
        if self._tqdm is not None:
            self._bar = self._tqdm(total=self.batches, desc=f"epoch {epoch + 1}/{self.epochs}",
                                   unit="batch", leave=True, file=sys.stderr)

    def update(self, loss: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.5g}", refresh=False)
            self._bar.update(1)

    def end_epoch(self, epoch: int, loss: float, seconds: float) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            sys.stderr.write(f"epoch {epoch + 1}/{self.epochs} loss {loss:.5g} ({seconds:.1f}s)\n")
