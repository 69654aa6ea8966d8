#!/usr/bin/env python3
"""torchrun for a libtorch built without libuv (Debian's 2.6), used by
tests/test_distributed.cpp: torchrun's agent creates its rendezvous TCPStore
with the libuv server, which such a build refuses ("use_libuv was requested
but PyTorch was build without libuv support"), and no option or variable
reaches that call. Here TCPStore defaults to the classic server before
torchrun's modules import it; everything else is torchrun itself.

    python3 tests/torchrun_nolibuv.py TORCHRUN_ARGS...
"""
import sys

import torch.distributed as dist

_TCPStore = dist.TCPStore


class TCPStore(_TCPStore):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("use_libuv", False)
        super().__init__(*args, **kwargs)


dist.TCPStore = TCPStore

from torch.distributed.run import main  # noqa: E402  (after the patch, on purpose)

sys.exit(main())
