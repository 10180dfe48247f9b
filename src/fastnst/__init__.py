"""fastnst: fast neural style transfer (Gatys optimization and feed-forward networks)."""

# first, before anything imports torch: OpenMP reads its wait policy once, when torch loads
from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()

from fastnst.errors import FastNSTError  # noqa: E402

__all__ = ["FastNSTError", "Stylizer"]
__version__ = "0.1.0"


def __getattr__(name):
    # Stylizer pulls in torch-heavy code; import it lazily so `import fastnst` stays cheap.
    if name == "Stylizer":
        from fastnst.stylize import Stylizer

        return Stylizer
    raise AttributeError(name)
