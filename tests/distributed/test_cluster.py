"""kzoo.distributed.cluster: which process of how many, from flags, Keras' variables, SLURM and a
Kubernetes indexed Job; bad values are one-line errors. Pure Python: nothing starts JAX."""

import pytest

from kzoo.distributed.cluster import DEFAULT_PORT, Cluster, first_host, resolve
from kzoo.errors import KzooError

KERAS = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES": "4",
         "KERAS_DISTRIBUTION_PROCESS_ID": "3"}


def test_no_flags_and_no_variables_is_one_process():
    assert resolve(env={}) == Cluster(1, 0, None, "single process")
    assert not resolve(env={"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}).is_multi_process


def test_keras_variables_and_flags_override_them_field_by_field():
    assert resolve(env=KERAS) == Cluster(4, 3, "10.0.0.1:1234", "KERAS_DISTRIBUTION_*")
    assert resolve(process_id=1, env=KERAS) == Cluster(4, 1, "10.0.0.1:1234", "flags")
    # every process's address, the coordinator first: the count defaults to the list's length
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h0:9000,h1:9000,h2:9000", "KERAS_DISTRIBUTION_PROCESS_ID": "2"}
    assert resolve(env=env) == Cluster(3, 2, "h0:9000", "KERAS_DISTRIBUTION_*")


def test_slurm_maps_tasks_to_processes_and_the_first_node_to_the_coordinator():
    env = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_STEP_NODELIST": "gpu[007-010]"}
    assert resolve(env=env) == Cluster(8, 5, f"gpu007:{DEFAULT_PORT}", "SLURM")
    env["KZOO_COORDINATOR_PORT"] = "12345"
    assert resolve(env=env).coordinator == "gpu007:12345"
    # Keras' own variables win over the scheduler's
    assert resolve(env={**env, **KERAS}).source == "KERAS_DISTRIBUTION_*"


@pytest.mark.parametrize("nodes, first", [("node1", "node1"), ("a1,b2", "a1"), ("gpu[003-005,9],cpu1", "gpu003"),
                                          ("n[12,40-41]", "n12"), ("dgx-a100-[1-4]", "dgx-a100-1")])
def test_first_host_of_a_slurm_node_list(nodes, first):
    assert first_host(nodes) == first


def test_kubernetes_indexed_job_gives_the_process_id():
    env = {"JOB_COMPLETION_INDEX": "2", "KERAS_DISTRIBUTION_NUM_PROCESSES": "4",
           "KERAS_DISTRIBUTION_JOB_ADDRESSES": "train-0.train:29500"}
    assert resolve(env=env) == Cluster(4, 2, "train-0.train:29500", "Kubernetes indexed Job")


@pytest.mark.parametrize("kwargs, env, message", [
    (dict(num_processes=2, process_id=2, coordinator="127.0.0.1:1"), {}, r"--process-id 2 \(from flags\): expected 0..1"),
    (dict(num_processes=2, process_id=-1, coordinator="127.0.0.1:1"), {}, "--process-id -1"),
    (dict(num_processes=0), {}, "--num-processes 0"),
    (dict(num_processes=2, process_id=0), {}, "no coordinator: pass --coordinator HOST:PORT"),
    (dict(num_processes=2, process_id=0, coordinator="10.0.0.1"), {}, "expected HOST:PORT"),
    (dict(num_processes=2, process_id=0, coordinator="h:70000"), {}, "expected HOST:PORT"),
    ({}, {**KERAS, "KERAS_DISTRIBUTION_PROCESS_ID": "4"}, r"--process-id 4 \(from KERAS_DISTRIBUTION_\*\)"),
    ({}, {"SLURM_NTASKS": "two"}, "SLURM_NTASKS='two': expected a whole number"),
])
def test_bad_values_are_one_line_errors(kwargs, env, message):
    with pytest.raises(KzooError, match=message) as err:
        resolve(env=env, **kwargs)
    assert "\n" not in str(err.value)
