"""Training on several replicas and workers (`trainers.distribute`), and mixed precision."""

import json
import os
import subprocess
import sys

import pytest

from trainers import distribute
from zoo.registry import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One step on two replicas equals one device's step on the same global batch up to float32
# summation order; without the 1/num_replicas loss average the weights differ by 0.05 to 1.5.
TOLERANCE = 1e-5


def python(*argv, env=None, timeout=240):
    environment = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_mirrored_steps_on_two_cpus_equal_one_device():
    # ~30-60 s: its own process, since the two logical CPUs must exist before TensorFlow starts.
    result = python(os.path.join(ROOT, "tests", "mirrored_check.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    for case in ("gan", "gan_gp_conditional_ac", "vae"):
        assert report[case]["max_change"] > 1e-3, case  # the steps did move the weights
        assert report[case]["max_difference"] < TOLERANCE, (case, report[case])
    assert report["noise"] == {"replicas_differ": True, "equals_one_device": True}
    assert report["iterator_resumes"]


@pytest.mark.parametrize("text, named", [
    (None, "needs the TF_CONFIG"),
    ("{not json", "is not valid"),
    ('{"cluster": {"worker": ["localhost:1"]}}', "is not valid"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}', "worker:3 is not in"),
])
def test_bad_tf_config_is_one_usage_line(text, named):
    with pytest.raises(UsageError, match=named) as error:
        distribute.check_tf_config(text)
    assert "\n" not in str(error.value)


def test_global_batch_must_divide_over_replicas():
    class Two:
        num_replicas_in_sync = 2

    assert distribute.per_replica_batch(Two(), 8) == 4
    with pytest.raises(UsageError, match="--batch_size=7 is the global batch"):
        distribute.per_replica_batch(Two(), 7)


def test_one_process_is_the_chief():
    import tensorflow as tf

    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.worker_index(tf.distribute.get_strategy()) == 0
