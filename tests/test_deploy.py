"""The deployment examples parse (through the project's safe YAML loader), pass Ray's own
cluster-launcher schema, and wire the study the same way: GPU workers, a shared volume that holds
`--storage`, token authentication, and a run_study command line that our CLI accepts."""
import os
import re
import shlex

from ray.autoscaler._private.util import prepare_config, validate_config

from smart.config import load_yaml
from tuning.run_study import parser

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")


def _study_args(command: str):
    words = shlex.split(command)
    i = words.index("tuning/run_study.py")
    args = parser().parse_args(words[i + 1:])
    assert args.study == "studies/aurora_weight.yaml" and args.address == "auto"
    return args


def test_cluster_launcher_yaml():
    path = os.path.join(DEPLOY, "cluster.yaml")
    cfg = load_yaml(path)
    validate_config(prepare_config(cfg))  # Ray's ray-schema.json: unknown or mistyped fields fail here
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"]["CPU"] == 0
    assert any(t.get("resources", {}).get("GPU", 0) >= 1 and t["max_workers"] > 0 for t in types.values())
    assert cfg["file_mounts"] == {"~/smart-tune": "."}
    assert any("/mnt/shared" in c and "mount" in c for c in cfg["initialization_commands"])
    assert any("--dashboard-host=127.0.0.1" in c for c in cfg["head_start_ray_commands"])
    assert all("RAY_AUTH_MODE=token" in c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
               if c.strip().startswith("RAY_AUTH") or "ray start" in c)
    with open(path) as fh:
        commands = re.findall(r'ray exec deploy/cluster.yaml "cd ~/smart-tune && (.*?)"', fh.read())
    assert len(commands) == 2
    assert all(_study_args(c).storage.startswith("/mnt/shared/") for c in commands)


def test_kuberay_rayjob_and_shared_claim():
    job = load_yaml(os.path.join(DEPLOY, "rayjob.yaml"))
    claim = load_yaml(os.path.join(DEPLOY, "shared-pvc.yaml"))
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert (claim["kind"], claim["spec"]["accessModes"]) == ("PersistentVolumeClaim", ["ReadWriteMany"])
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    args = _study_args(spec["entrypoint"])
    assert args.code == "installed"
    cluster = spec["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for pod in pods:
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = [m for m in container["volumeMounts"]
                  if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]]
        assert any(args.storage.startswith(m["mountPath"] + "/") for m in mounts)
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    for group in cluster["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
