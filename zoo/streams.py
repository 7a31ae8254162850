"""Random draws that differ across the replicas of a `tf.distribute` strategy.

Every replica holds the same `keras.random.SeedGenerator` state, so a plain draw would give each
replica the same noise. `draw` instead has every replica draw the rows of the whole (global)
batch from the shared stream and keep its own block of them, selected by its index in the sync
group (global across workers). The replicas' noise thus differs, and for noise drawn per example
(latents, the VAE's reparameterisation, the gradient penalty's interpolation weights, InfoGAN's
codes) it is the noise one device would draw for the global batch: a step does not depend on the
number of replicas. On one replica (the default strategy) `draw` is the plain draw.
"""

from __future__ import annotations

import tensorflow as tf


def replicas():
    """The number of replicas in sync and this replica's index among them (1 and 0 outside a
    strategy's replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return 1, tf.constant(0)
    return context.num_replicas_in_sync, tf.cast(context.replica_id_in_sync_group, tf.int32)


def draw(function, shape, seed, *args, **kwargs):
    """`function(shape, *args, seed=seed, **kwargs)` (a `keras.random` function, `shape`
    starting with this replica's batch), this replica's block of the global batch's draw."""
    count, index = replicas()
    if count == 1:
        return function(shape, *args, seed=seed, **kwargs)
    shape = tf.convert_to_tensor(shape, tf.int32)
    rows = shape[0]
    values = function(tf.concat([[rows * count], shape[1:]], 0), *args, seed=seed, **kwargs)
    start = index * rows
    return values[start:start + rows]
