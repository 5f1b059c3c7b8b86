"""The Trainer's data-parallel path (2 gloo ranks, no Ray): ranks stay in sync, only rank 0
evaluates, and a 2-rank checkpoint resumes bit-for-bit (and is refused by a 1-process run)."""
import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from smart.config import RunConfig
from smart.loop import Trainer

CFG = {"training": {"kimg": 4.0, "batch_size": 128, "eval_every_kimg": 2.0},
       "eval": {"num_samples": 500, "metrics": ["fid", "modes"]},
       "regularizer": {"weight": 0.1, "interval": 2}}


def _flat(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.G.parameters()])


def _rank(rank, world, tmp):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        cfg = RunConfig.from_dict(CFG)
        seen = []
        straight = Trainer(cfg, callbacks=[lambda t, m: seen.append(sorted(m))], distributed=True)
        final = straight.train()
        half = Trainer(cfg, distributed=True)
        half.train(until_kimg=2.0)
        half.save(f"{tmp}/ckpt.pt")
        dist.barrier()
        resumed = Trainer(cfg, distributed=True)
        resumed.load(f"{tmp}/ckpt.pt")
        resumed.train()
        gathered = [torch.empty_like(_flat(straight)) for _ in range(world)]
        dist.all_gather(gathered, _flat(straight))
        out = {"keys": seen, "final": final, "same_across_ranks": all(torch.equal(g, gathered[0]) for g in gathered),
               "resume_equal": torch.equal(_flat(resumed), _flat(straight)) and resumed.kimg == straight.kimg}
        with open(f"{tmp}/rank{rank}.json", "w") as fh:
            json.dump(out, fh)
    finally:
        dist.destroy_process_group()


def test_two_ranks_sync_evaluate_on_rank0_and_resume(tmp_path):
    mp.spawn(_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["same_across_ranks"] and r1["same_across_ranks"]  # gradients averaged, one model
    assert r0["resume_equal"] and r1["resume_equal"]  # both ranks' random streams were saved
    assert "fid" in r0["keys"][0] and r1["keys"] == [["kimg"], ["kimg"]]  # only rank 0 evaluates
    assert r0["final"]["kimg"] >= 4.0 and r1["final"] == {"kimg": r0["final"]["kimg"]}

    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["world"] == 2 and state["rng"].shape[0] == 2
    with pytest.raises(ValueError, match="written by 2 workers, this run has 1"):
        Trainer(RunConfig.from_dict(CFG)).load(str(tmp_path / "ckpt.pt"))

