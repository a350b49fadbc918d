"""TWIN-V2's offline clustering job: same virtual items on every backend, and it resumes after a crash."""

import numpy as np
import pytest

from papers.twin.clustering import ClusteringConfig
from papers.twin.lifecycle import ClusteringJob, UserBehaviors, cluster_user, read_virtual_items

EMBEDDINGS = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)


def users(count: int = 10, crash_after: int | None = None):
    """A stream of users; with `crash_after`, the stream dies there, as an interrupted job would."""
    for user in range(count):
        if crash_after is not None and user == crash_after:
            raise KeyboardInterrupt("interrupted")
        rng = np.random.default_rng(user)
        length = int(rng.integers(50, 400))
        completion = rng.random(length) * 1.2
        yield UserBehaviors(
            user=100 + user,
            items=rng.integers(1, 500, length),
            completion=completion,
            numeric={"time_ms": np.sort(rng.random(length)) * 1e12, "completion": completion},
            categorical={"tab": rng.integers(1, 6, length)},
        )


def run_job(tmp_path, name, backend, **options):
    job = ClusteringJob(tmp_path / name, ClusteringConfig(max_cluster_size=8), backend, shard_size=3, progress=False)
    return read_virtual_items(job.run(users(**options), EMBEDDINGS))


def assert_same_tables(first, second):
    assert first.keys() == second.keys()
    for user in first:
        assert first[user].keys() == second[user].keys()
        for name in first[user]:
            np.testing.assert_array_equal(first[user][name], second[user][name])


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("serial"), "job", "serial")


def test_job_covers_every_user_with_virtual_items_within_gamma(serial):
    assert sorted(serial) == list(range(100, 110))
    for user, behaviors in zip(sorted(serial), users(), strict=True):
        table = serial[user]
        assert table["size"].sum() == len(behaviors.items) and table["size"].max() <= 8
        assert set(table) == {"item", "size", "spread", "tab", "time_ms", "completion"}
        assert np.isin(table["item"], behaviors.items).all()


def test_process_pool_gives_the_serial_result(serial, tmp_path):
    assert_same_tables(run_job(tmp_path, "pool", "process"), serial)


def test_ray_on_a_local_two_cpu_instance_gives_the_serial_result(serial, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert_same_tables(run_job(tmp_path, "ray", "ray"), serial)
    finally:
        ray.shutdown()


def test_interrupted_job_resumes_and_recomputes_only_missing_shards(serial, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_job(tmp_path, "resumed", "serial", crash_after=7)
    written = sorted((tmp_path / "resumed").glob("shard_*.npz"))
    assert [path.name for path in written] == ["shard_000000.npz", "shard_000001.npz"]
    stamps = [path.stat().st_mtime_ns for path in written]
    assert_same_tables(run_job(tmp_path, "resumed", "serial"), serial)
    assert [path.stat().st_mtime_ns for path in written] == stamps  # finished shards were not redone


def test_per_user_function_is_deterministic_whoever_runs_it():
    behaviors = next(users())
    first = cluster_user(behaviors, EMBEDDINGS, ClusteringConfig())
    second = cluster_user(behaviors, EMBEDDINGS, ClusteringConfig())
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_unknown_backend_is_named(tmp_path):
    with pytest.raises(Exception, match="clustering.backend='spark'"):
        run_job(tmp_path, "bad", "spark")
