"""`python -m finetune_studio.executors.ray JOB_DIR`: one attempt of a job as Ray Train workers.

This driver runs where the server's workers run (started, tailed, cancelled and re-adopted like any
worker: `local.py`), connects to Ray (`resources.ray_address`, else RAY_ADDRESS, else a local Ray started
for the job and stopped with it), and runs a `TorchTrainer` of N workers (`resources.gpus`, or
`resources.processes` without GPUs), each building the HF `Trainer` as the worker does
(`worker.train_job`). Ray sets up torch.distributed (gloo on CPUs, nccl on GPUs).

Ray workers may run on machines that cannot reach the server's loopback address, so nothing in them talks
to the server: rank 0 hands its events to a `Relay` actor pinned to this driver's node, which owns the
reporter client (numbering, batching, spooling: `reporter.py`) and posts to the server. The relay outlives
a worker group's restart, so the events' numbering goes on without a gap or a repeat.

Checkpoints: at every save, each rank reports to Ray, rank 0 with the Trainer's checkpoint folder, which
Ray copies to its `storage_path` (`JOB_DIR/ray`). A worker that dies makes Ray restart the worker group
(`FailureConfig(max_failures)`) and the new one resumes from Ray's latest checkpoint; steps logged after
it are logged again, and the store keeps one point per step. SIGTERM (cancel) asks the relay to stop:
rank 0 reads that at each step's end, the ranks agree (`worker.agreed`), save a checkpoint and
return; the driver writes `result.json` and removes the relay, so no actor of the job is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..spec import JobSpec
from ..worker import GracefulStop, SilentClient, job_spec, train_job

MAX_FAILURES = 3  # worker group restarts per attempt before the job fails


class Relay:
    """Rank 0's events -> the server, from this driver's node (a Ray actor)."""

    def __init__(self, url: str | None, token: str | None, job_id: str | None, attempt: int, spool: str,
                 state_dir: str | None) -> None:
        from ..delivery import ReporterClient

        self.client = ReporterClient(url, token, job_id, attempt, Path(spool),
                                     state_dir=Path(state_dir) if state_dir else None)
        self.stop = False
        self.results: dict[int, tuple[float, dict[str, Any]]] = {}  # rank -> (when, its latest result)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.client.emit(type_, data)

    def flush(self) -> None:
        self.client.flush()

    def request_stop(self) -> None:
        self.stop = True

    def stop_requested(self) -> bool:
        return self.stop

    def set_result(self, rank: int, result: dict[str, Any]) -> None:
        self.results[rank] = (time.time(), result)

    def finish(self) -> dict[str, Any] | None:
        """Everything sent (or spooled); the job's result: rank 0's when it ended well, else the first
        failure (the ranks that failed after it lost their peer)."""
        self.client.close()
        ended = self.results.get(0)
        if ended is not None and ended[1].get("state") in ("completed", "cancelled"):
            return ended[1]
        failures = sorted((when, rank, result) for rank, (when, result) in self.results.items()
                          if result.get("state") == "failed")
        if not failures:
            return ended[1] if ended else None
        _, rank, result = failures[0]
        if rank != 0:
            result = {**result, "error": {**result["error"], "message": f"rank {rank}: {result['error']['message']}"}}
        return result


class RelayClient:
    """What the worker's callbacks see as their reporter client: events go to the relay, in order (calls
    from one caller to an actor run in the order they were made)."""

    def __init__(self, relay: Any) -> None:
        self.relay = relay

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.relay.emit.remote(type_, data)

    def flush(self) -> None:
        ray.get(self.relay.flush.remote())


class RelayStop(GracefulStop):
    """The driver's stop request, as the worker's `GracefulStop`: rank 0 asks the relay at each step's end
    (one small call per step), the other ranks learn it from rank 0 (`worker.agreed`)."""

    def __init__(self, relay: Any | None) -> None:  # no signal handler: a Ray worker trains off the main thread
        self._relay = relay
        self._set = False

    @property
    def requested(self) -> bool:
        if not self._set and self._relay is not None:
            self._set = bool(ray.get(self._relay.stop_requested.remote()))
        return self._set

    @requested.setter
    def requested(self, value: bool) -> None:
        self._set = value


def report_checkpoints() -> Any:
    """A TrainerCallback: every rank reports each saved checkpoint to Ray (a collective), rank 0 with its
    folder, which Ray copies to storage_path."""
    from transformers import TrainerCallback

    class ReportCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            checkpoint = (ray.train.Checkpoint.from_directory(str(folder))
                          if state.is_world_process_zero and folder.is_dir() else None)
            ray.train.report({"step": state.global_step}, checkpoint=checkpoint,
                             checkpoint_dir_name=f"checkpoint-{state.global_step}")

    return ReportCheckpoints()


def train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the job's Trainer, resumed from Ray's latest checkpoint after a restart."""
    spec = JobSpec.model_validate(config["spec"])
    job_dir, relay, attempt = Path(config["job_dir"]), config["relay"], int(config["attempt"])
    rank = ray.train.get_context().get_world_rank()
    restored = ray.train.get_checkpoint()
    resume_from = restored.path if restored is not None else None
    if resume_from and rank == 0:
        print(f"Ray restarted the workers: resuming from {resume_from}", flush=True)
    client = RelayClient(relay) if rank == 0 else SilentClient()
    # As under torchrun, the job's log holds rank 0's stdout and every rank's stderr.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull if rank else sys.stdout):
        result = train_job(spec, job_dir, client, attempt, RelayStop(relay if rank == 0 else None),
                           resume_from=resume_from, callbacks=[report_checkpoints()])
    ray.get(relay.set_result.remote(rank, result))
    if result.get("state") == "failed":
        import torch.distributed as dist

        # The other ranks may wait in a collective for this one: closing the group ends their wait.
        if dist.is_initialized():
            dist.destroy_process_group()


def quiet_placement_group_cleaner() -> None:
    """Run in each of the job's Ray worker processes as it starts (`worker_process_setup_hook`). Ray
    Train's PlacementGroupCleaner asks the State API every second whether the run's controller lives; on a
    cluster without Ray's dashboard (the local Ray started for a job has none) each ask fails with a warning,
    which filled the job's log with a line a second. That logger alone is quieted."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


JOB_RUNTIME_ENV = {"worker_process_setup_hook": f"{__name__}.quiet_placement_group_cleaner"}


def connect(spec: JobSpec) -> bool:
    """Connect to the job's Ray; True when a local Ray was started for it (it stops with this driver)."""
    address = spec.resources.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True, runtime_env=JOB_RUNTIME_ENV)
        return False
    resources = spec.resources
    gpus = resources.gpus if isinstance(resources.gpus, int) else 1
    wanted = resources.processes if resources.processes > 1 else gpus
    # One CPU per worker (the driver and the relay take none): more would let Ray start idle workers.
    ray.init(num_cpus=max(1, wanted), include_dashboard=False, log_to_driver=True, runtime_env=JOB_RUNTIME_ENV)
    return True


def workers_of(spec: JobSpec) -> tuple[int, bool]:
    """How many Ray Train workers, and whether each takes a GPU (only where the cluster has GPUs)."""
    resources = spec.resources
    if resources.processes > 1:
        return resources.processes, False
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    if resources.gpus == "all":
        return max(1, cluster_gpus), cluster_gpus > 0
    return max(1, resources.gpus), resources.gpus > 0 and cluster_gpus > 0


def run(job_dir: Path) -> dict[str, Any]:
    from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig  # Train V2
    from ray.train.v2.torch.torch_trainer import TorchTrainer

    spec = job_spec(job_dir)
    attempt = int(os.environ.get("FINETUNE_STUDIO_ATTEMPT", "1"))
    stopping = threading.Event()
    local_ray = connect(spec)
    # After ray.init, which installs a SIGTERM handler that exits the driver at once.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    relay: Any = None  # an ActorHandle[Relay]; Ray's stubs do not follow its methods' `.remote`
    finished = False
    try:
        workers, use_gpu = workers_of(spec)
        node = ray.get_runtime_context().get_node_id()
        actor: Any = ray.remote(num_cpus=0)(Relay)
        relay = actor.options(  # on this node: it posts to the server's loopback
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)).remote(
            os.environ.get("FINETUNE_STUDIO_URL"), os.environ.get("FINETUNE_STUDIO_TOKEN"),
            os.environ.get("FINETUNE_STUDIO_JOB"), attempt, str(job_dir / "spool.jsonl"),
            os.environ.get("FINETUNE_STUDIO_HOME"))

        def forward_stop() -> None:
            stopping.wait()
            ray.get(relay.request_stop.remote())

        threading.Thread(target=forward_stop, name="studio-ray-stop", daemon=True).start()
        where = "a local Ray started for this job" if local_ray else ray.get_runtime_context().gcs_address
        print(f"Ray: {workers} Train workers ({'GPU' if use_gpu else 'CPU'}) on {where}; checkpoints in "
              f"{job_dir / 'ray'}", flush=True)
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"spec": spec.model_dump(mode="json"), "job_dir": str(job_dir), "relay": relay,
                               "attempt": attempt},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(name=f"attempt-{attempt}", storage_path=str(job_dir / "ray"),
                                 failure_config=FailureConfig(max_failures=MAX_FAILURES),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2),
                                 # Ray Train's patched print() escapes redirections of sys.stdout: dill's
                                 # disassembly (datasets' fingerprints) then flooded the job's log.
                                 worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}))
        try:
            trainer.fit()
        except ray.train.TrainingFailedError as error:
            traceback.print_exc()
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return {"state": "failed", "error": {
                "type": "ray_training_failed", "message": f"Ray Train gave up after {MAX_FAILURES} restarts: {first}",
                "hint": "the job's log holds each worker's output; Resume continues from the last checkpoint"}}
        result: dict[str, Any] | None = ray.get(relay.finish.remote())
        finished = True
        if result is not None:
            return result
        if stopping.is_set():
            return {"state": "cancelled"}
        return {"state": "failed", "error": {"type": "ray_no_result", "message": "the Ray workers ended without "
                                             "a result", "hint": "the job's log holds each worker's output"}}
    finally:
        if relay is not None:
            if not finished:
                ray.get(relay.finish.remote(), timeout=60)  # what rank 0 emitted is sent or spooled
            ray.kill(relay)
        ray.shutdown()  # a local Ray started for the job stops with it


def main() -> int:
    # Ray pickles the train loop by reference: it must come from the importable module, not __main__.
    from finetune_studio.executors import ray as executor
    from finetune_studio.worker import finish

    job_dir = Path(sys.argv[1]).resolve()
    return finish(job_dir, executor.run(job_dir))


if __name__ == "__main__":
    from finetune_studio.worker import exit_now

    exit_now(main())
