"""A commit's frame per node, spliced into one encoding, is the frame encoding gives."""

from __future__ import annotations

import msgspec
import pytest

from jobyard.wire import agent as wire

# Values that look like the node field, in every other field a commit has.
LOOKALIKE = '"node":""'


@pytest.mark.parametrize("node", ["web1", "", "x", 'we"ird\\é', "n" * 253, LOOKALIKE])
def test_the_spliced_frame_is_the_encoded_one(node: str) -> None:
    commit = wire.Commit(
        job=7,
        attempt=2,
        command=f"echo {LOOKALIKE}",
        argv=[LOOKALIKE, "node"],
        env={"node": "", "x": LOOKALIKE},
        secret_env=["node"],
        dir=LOOKALIKE,
        node="",
        file=LOOKALIKE,
        user="node",
        input_files=[wire.InputFile(id=1, name=LOOKALIKE, size=3, sha256="ab")],
        outputs=[LOOKALIKE],
        files_cap=9,
    )
    frame = wire.commit_per_node(commit)(node)
    assert frame == wire.encode(msgspec.structs.replace(commit, node=node))
    decoded = wire.decode(frame)
    assert isinstance(decoded, wire.Commit) and decoded.node == node and decoded.env == commit.env
