"""What `fit` returns: the loss per epoch and per update, as a dict that can plot itself."""
from typing import Any


class History(dict):
    """``{"loss": [mean loss per epoch], "batch_loss": [loss of every update]}``.

    A plain dict (compare it, index it, serialise it) with one addition, :meth:`plot`.

    Examples
    --------
    >>> h = History(loss=[0.5, 0.25], batch_loss=[0.6, 0.4, 0.3, 0.2])
    >>> h["loss"][-1]
    0.25
    """

    def plot(self, ax: Any = None) -> Any:
        """Draw the per-update loss and the per-epoch mean (matplotlib, log scale).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; by default a new figure's axes.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.

        Raises
        ------
        ImportError
            When matplotlib is not installed (``pip install matplotlib``).

        Examples
        --------
        >>> History(loss=[0.5], batch_loss=[0.6, 0.4]).plot()  # doctest: +SKIP
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        if ax is None:
            ax = plt.figure().add_subplot()
        batches = self.get("batch_loss", [])
        epochs = self.get("loss", [])
        ax.plot(range(1, len(batches) + 1), batches, lw=0.8, alpha=0.6, label="update")
        if epochs and batches:
            per_epoch = len(batches) / len(epochs)
            ax.plot([per_epoch * (e + 1) for e in range(len(epochs))], epochs, "o-", label="epoch mean")
        ax.set_xlabel("update")
        ax.set_ylabel("loss")
        if batches and min(batches) > 0:
            ax.set_yscale("log")
        ax.legend()
        return ax
