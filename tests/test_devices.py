"""Device handling that a CPU machine can check: checkpoints load with their random streams on the
CPU whatever the trainer's device, collectives go through the backend's device, and a trial without
a granted GPU runs on the CPU with CUDA hidden."""
import pytest
import torch

from smart.config import RunConfig
from smart.devices import collective_device, cpu_state, granted_device, hide_gpus
from smart.loop import Trainer

SHORT = {"training.kimg": 0.256, "training.batch_size": 64, "training.eval_every_kimg": 0.256,
         "eval.num_samples": 200, "eval.metrics": ["modes"], "regularizer.weight": 0.1}


def test_checkpoint_loads_onto_cpu_whatever_the_trainers_device(tmp_path):
    """A trainer on another device (here "meta", the only non-CPU device a CPU machine has) must
    not read a checkpoint onto that device: the generator states must arrive as CPU ByteTensors
    (set_state refuses anything else), and the nets copy their weights to their own device.
    Reading with map_location=<trainer's device>, as a CUDA trainer did, fails here."""
    cfg = RunConfig.from_dict({}, SHORT)
    first = Trainer(cfg)
    first.step()
    first.save(str(tmp_path / "c.pt"))
    expected = first.rng.get_state()

    second = Trainer(cfg)
    second.device = torch.device("meta")
    second.load(str(tmp_path / "c.pt"))
    assert torch.equal(second.rng.get_state(), expected)
    assert torch.equal(next(second.G.parameters()), next(first.G.parameters()))


def test_cpu_state_makes_a_settable_generator_state():
    state = torch.Generator().manual_seed(3).get_state()
    as_loaded = torch.cat([torch.zeros(7, dtype=torch.uint8), state]).to(torch.int64)[7:]  # a typed view
    gen = torch.Generator()
    with pytest.raises((TypeError, RuntimeError)):
        gen.set_state(as_loaded)
    gen.set_state(cpu_state(as_loaded))
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize("backend, device", [("nccl", "cuda"), ("NCCL", "cuda"), ("gloo", "cpu"), ("mpi", "cpu")])
def test_collectives_go_through_the_backends_device(backend, device):
    assert collective_device(backend).type == device


@pytest.mark.parametrize("requested, gpu_ids, device", [
    ("auto", [], "cpu"), ("cpu", [], "cpu"), ("auto", [0], "auto"), ("cuda", ["1"], "cuda"), ("cpu", [0], "cpu")])
def test_a_trial_uses_only_granted_devices(requested, gpu_ids, device):
    assert granted_device(requested, gpu_ids) == device


def test_a_trial_without_a_gpu_cannot_ask_for_cuda():
    with pytest.raises(RuntimeError, match="granted no GPU"):
        granted_device("cuda", [])


def test_gpus_are_hidden_without_a_grant():
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert hide_gpus([0], env) is False and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    env = {}
    hide_gpus([], env)
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_a_ray_trial_granted_no_gpu_runs_on_cpu_with_cuda_hidden(ray_session):
    """The trainable's own restriction, inside a real Ray actor that asked for no GPU."""
    import os

    import ray

    from tuning.trial_run import on_granted_devices

    @ray.remote(num_cpus=1, num_gpus=0)
    def trial_view(cfg):
        restricted = on_granted_devices(cfg)
        return restricted.device, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count()

    device, visible, count = ray.get(trial_view.remote(RunConfig.from_dict({}, {"device": "auto"})))
    assert (device, visible, count) == ("cpu", "", 0)
