"""sdn.allocator: freed blocks stay in the process and are reused without new pages."""
import subprocess
import sys

import pytest

# In a child process (the setting is process-wide): minor page faults of allocating, touching and
# freeing a 64 MiB block, forty times. By default glibc maps a block that large from the kernel and
# unmaps it when it is freed, so every round touches fresh pages. With the thresholds raised, the
# heap keeps it; but small allocations made between rounds can sit between a freed block and the
# heap's top, and torch's aligned request is a little larger than the block it freed, so the heap
# may grow a few more times (up to round 8 of 10 in one CI run, depending on the layout that hash
# randomisation gives) before the freed blocks coalesce and are reused.
PROGRAM = """
import resource, sys, torch
from sdn.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(int(sys.argv[2])):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults)
"""
PAGES = 64 * 2**20 // 4096
ROUNDS, SETTLED = 40, 20


def _faults(mode: str) -> tuple[str, list[int]]:
    kept, *faults = subprocess.run([sys.executable, "-c", PROGRAM, mode, str(ROUNDS)], capture_output=True,
                                   text=True, check=True).stdout.split()
    return kept, [int(f) for f in faults]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and getrusage's page faults")
def test_a_freed_block_is_reused_without_new_pages():
    _, default = _faults("default")
    kept, faults = _faults("keep")
    assert kept == "True"
    assert min(default[SETTLED:]) > PAGES // 2  # glibc's defaults: fresh pages every round
    assert faults[0] > PAGES // 2  # the first block is new memory
    assert sum(faults[SETTLED:]) < PAGES // 100  # once the heap has settled, blocks are reused
