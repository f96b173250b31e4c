"""``pipelines``: the command line of the training side. A thin layer over the library functions."""

from __future__ import annotations

import platform

from curate.cliutil import make_app, guarded, out_console

app = make_app("pipelines", "Train, evaluate and run Band-Split RNN separators on curated manifests.")


@app.callback()
def _root() -> None:
    """Train, evaluate and run Band-Split RNN separators on curated manifests."""


@app.command()
@guarded
def env() -> None:
    """Print the versions and the accelerators that training and separation would use."""
    import lightning
    import torch

    out_console.print(f"python     {platform.python_version()}")
    out_console.print(f"torch      {torch.__version__}")
    out_console.print(f"lightning  {lightning.__version__}")
    cuda = torch.cuda.is_available()
    out_console.print(f"cuda       {'yes, ' + str(torch.cuda.device_count()) + ' device(s): ' + torch.cuda.get_device_name(0) if cuda else 'no'}")
    out_console.print(f"cpu        {torch.get_num_threads()} threads")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
