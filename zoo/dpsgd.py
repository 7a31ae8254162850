"""DP-SGD: each example's gradient clipped, the sum noised, then the model's own optimizer.

`apply_private_gradients` replaces `base.apply_gradients` for the networks that see real data
(the discriminator of a GAN with its heads, the VAE's encoder and decoder). It takes the model's
loss as a function of one example (with the step's noise passed in), clips each example's
gradient to L2 norm `l2_norm_clip` over all the variables together, sums them, adds Gaussian
noise of standard deviation `noise_multiplier * l2_norm_clip` and divides by the global batch size
(Abadi et al. 2016). Terms that depend on no real example get no noise: their gradient is a
function of the already private weights. They are added as they are (InfoGAN's code loss on
generated samples, `public_gradients`) or clipped per example to keep their weight beside the
clipped real examples (a GAN's generated half, `clipped_mean_gradients`). A loss of several
terms has each term clipped apart to its share of the clip norm (`example_clipped_sum`).

The clipped sum is computed one of two ways, chosen when the step is traced; both give the same
sum up to float rounding:

- by default every example's gradient is computed in one vectorised pass (`tf.vectorized_map`)
  and clipped: any loss, any layers, but each example's gradient of every variable is
  materialised, which on a small MLP costs several times the plain step;
- when the model also describes its loss as a `RowwiseLoss` (a network applied to each example's
  rows, then a loss of those rows' outputs) and the network is made of dense layers and
  row-wise layers without weights (`dense_plan`), the norms come from one batched forward and
  backward pass instead (`rowwise_clipped_sum`): example i's gradient of a dense kernel is
  `sum_t a_it^T g_it` over its rows t (input activations `a`, gradients `g` of the layer's
  output), whose squared norm is `sum_ts (a_it . a_is)(g_it . g_is)`, and the clipped sum is
  `a^T (f g)` with each example's rows weighted by its clip factor f (Goodfellow 2015, "Efficient
  per-example gradient computations"; Lee & Kifer 2021; Li et al. 2022, "ghost clipping").

The account of what this spends is kept by `trainers.privacy`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import tensorflow as tf

from synthblend.zoo import streams


@dataclasses.dataclass(frozen=True)
class Clipping:
    """Per-example clip norm `l2_norm_clip` and `noise_multiplier` (noise std / clip norm)."""

    l2_norm_clip: float
    noise_multiplier: float


def tensorflow_variables(variables):
    """The TensorFlow variables behind Keras variables (whose dtype, a string, gradients with
    `unconnected_gradients=ZERO` cannot read)."""
    return [variable.value if isinstance(variable, keras.Variable) else variable for variable in variables]


def per_example_gradients(loss, inputs, variables):
    """Each example's gradient of `loss` with respect to `variables`: for each variable a tensor
    with a leading axis over the examples of `inputs` (tensors whose first axis is the batch).
    `loss(*rows)` takes a batch of one example and returns a scalar, or a tuple of scalar terms
    (then a tuple of such lists, one per term); it must draw no randomness (pass noise in
    `inputs`). Vectorised over the examples (pfor), each a forward and a backward pass of its
    own, so memory grows with the batch, not with its square."""
    sources = tensorflow_variables(variables)

    def gradient(rows):
        with tf.GradientTape(persistent=True) as tape:
            value = loss(*[row[None] for row in rows])
        if isinstance(value, tuple):
            return tuple(tape.gradient(term, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
                         for term in value)
        return tape.gradient(value, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return tf.vectorized_map(gradient, tuple(inputs))


def clip_factors(norms, l2_norm_clip):
    """What each example's gradient is multiplied by to bring its L2 norm to at most `l2_norm_clip`."""
    return tf.minimum(1.0, l2_norm_clip / tf.maximum(norms, 1e-12))


def clipped_sum(gradients, l2_norm_clip):
    """The sum over examples of each example's gradient scaled to L2 norm at most `l2_norm_clip`
    (the norm over all variables); also the examples' norms before clipping."""
    squares = [tf.reduce_sum(tf.reshape(tf.square(g), (tf.shape(g)[0], -1)), axis=1) for g in gradients]
    norms = tf.sqrt(tf.add_n(squares))
    factors = clip_factors(norms, l2_norm_clip)
    sums = [tf.tensordot(factors, g, axes=1) for g in gradients]
    return sums, norms


@dataclasses.dataclass(frozen=True)
class RowwiseLoss:
    """A per-example loss written as `head(network(rows))`, which lets `private_gradients` take the
    examples' gradient norms and their clipped sum from one batched pass of `network` instead of
    one pass per example (see the module's docstring and `dense_plan` for the networks it takes).

    `rows(*inputs)` maps the batched inputs of the per-example loss to the network's input for
    every example, shape `(batch, k, *input shape)`: example i's k rows (a GAN's pair: its real
    and its generated example). `head(outputs, *example)` is example i's loss from the network's
    outputs on its k rows (each output with leading axis k) and from its inputs (each a batch of
    one, as the per-example loss gets them). For every example it must equal the per-example loss
    given with it, and it must read no weights: the weights' gradients are taken through `network`
    alone. The network sees every row in one batch, so it must treat each row on its own, which
    `dense_plan` checks layer by layer.
    """

    network: keras.Model
    rows: Callable
    head: Callable


# Layers without weights that act on each row alone, never across the batch; the batched pass runs
# them as they are. Matched by exact type: a subclass may compute something else.
ROWWISE_LAYERS = (keras.layers.InputLayer, keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                  keras.layers.Flatten, keras.layers.Reshape)


def is_functional(operation) -> bool:
    """Whether `operation` is a functional Keras model, whose graph `dense_forward` can run layer
    by layer."""
    return (isinstance(operation, keras.Model) and isinstance(operation, keras.Function)
            and hasattr(operation, "_run_through_graph"))


def is_plain_dense(operation) -> bool:
    """Whether `operation` is a dense layer computing `x @ kernel + bias` from its own kernel
    variable: linear activation (one inside the layer would hide the output whose gradient the
    norms need), no LoRA, not quantised."""
    return (type(operation) is keras.layers.Dense and operation.activation is keras.activations.linear
            and not getattr(operation, "lora_enabled", False)
            and getattr(operation, "quantization_mode", None) is None)


def dense_plan(network, variables):
    """For each of `variables`, the dense layer of `network` it belongs to and whether it is that
    layer's kernel (else its bias); None when the batched pass of `rowwise_clipped_sum` cannot give
    these variables' per-example gradients: `network` is not a functional model with one input,
    holds an operation other than plain dense layers (`is_plain_dense`), `ROWWISE_LAYERS` and
    functional models of them with one input, or one of `variables` is not the kernel or bias of
    one of its dense layers (such as an auxiliary head's, which the per-example loss may read
    outside `network`). Pure Python over the network's structure: the step calls it once, when it
    is traced."""
    if not is_functional(network) or len(network.inputs) != 1:
        return None
    owners = {}  # id of a dense layer's variable -> (layer, whether it is the kernel)

    def visit(model):
        for operation in model.operations:
            if type(operation) in ROWWISE_LAYERS:
                continue
            if is_functional(operation):
                if len(operation.inputs) != 1 or not visit(operation):
                    return False
                continue
            if not is_plain_dense(operation):
                return False
            owners[id(operation.kernel)] = (operation, True)
            if operation.bias is not None:
                owners[id(operation.bias)] = (operation, False)
        return True

    if not visit(network):
        return None
    plan = [owners.get(id(variable)) for variable in variables]
    return None if any(entry is None for entry in plan) else plan


def dense_forward(network, inputs, record):
    """`network`'s outputs on `inputs`, computed by its own layers in the order of its graph, with
    `record(layer, x, z)` called on every dense layer's input `x` and output `z` before anything
    reads `z`. For networks `dense_plan` accepts. The graph is run by the functional model's own
    walk (`_run_through_graph`, which its `call` uses too), so that the outputs are the network's,
    but for the dense layers' calls, which are wrapped, and nested models, walked the same way."""

    def operation_fn(operation):
        if isinstance(operation, keras.layers.Dense):
            def dense(x, *args, **kwargs):
                z = operation(x, *args, **kwargs)
                record(operation, x, z)
                return z
            return dense
        if is_functional(operation):
            return lambda x, *args, **kwargs: dense_forward(operation, x, record)
        return operation

    inputs = [tf.cast(value, spec.dtype) for value, spec in zip(tf.nest.flatten(inputs), network.inputs)]
    return network._run_through_graph(inputs, operation_fn=operation_fn)


def kernel_squares(a, g):
    """Each example's squared L2 norm of `sum_t a[:, t]^T g[:, t]`, a dense kernel's gradient from
    its input rows `a` (batch, T, in) and output gradients `g` (batch, T, out). From the Gram
    matrices of the T rows, `sum_ts (a_t . a_s)(g_t . g_s)`, without the in x out gradient, unless
    that costs less (T (in + out) > in x out: few units, many rows, as Li et al. 2022 choose)."""
    positions, units_in, units_out = a.shape[1], a.shape[-1], g.shape[-1]
    if positions == 1:
        return tf.reduce_sum(tf.square(a), axis=[1, 2]) * tf.reduce_sum(tf.square(g), axis=[1, 2])
    if positions is not None and positions * (units_in + units_out) > units_in * units_out:
        return tf.reduce_sum(tf.square(tf.einsum("bti,bto->bio", a, g)), axis=[1, 2])
    return tf.reduce_sum(tf.matmul(a, a, transpose_b=True) * tf.matmul(g, g, transpose_b=True), axis=[1, 2])


def rowwise_clipped_sum(rowwise: RowwiseLoss, inputs, plan, l2_norm_clip):
    """What `clipped_sum` gives for the per-example gradients of `rowwise` (the variables of
    `plan`, from `dense_plan`), from one forward pass of the network over every example's rows and
    one backward pass to its dense layers' outputs.

    A dense layer's kernel gradient for example i is `sum_t a_it^T g_it` over the rows t where the
    layer saw that example (its k rows, and their positions where the layer acts on a sequence;
    every call, where a layer is called more than once), its bias gradient `sum_t g_it`; their
    norms (`kernel_squares`) give each example's norm over all the variables, hence its clip
    factor f_i, and the clipped sum of the kernel's gradients is `a^T (f g)`, one product of the
    size of the plain step's. The gradients `g` come from one backward pass from the network's
    outputs, seeded with each example's gradient of `rowwise.head` at its rows' outputs (taken for
    every example in one vectorised call, like `per_example_gradients` but through the head only);
    since the network treats each row on its own, the gradient at a row of a layer's output is
    then its example's.
    """
    rows = tf.convert_to_tensor(rowwise.rows(*inputs))
    per_example = rows.shape[1]
    batch = tf.shape(rows)[0]
    calls = []
    with tf.GradientTape(watch_accessed_variables=False) as tape:

        def record(layer, x, z):
            tape.watch(z)
            calls.append((layer, x, z))

        flat = tf.reshape(rows, tf.concat([[-1], tf.shape(rows)[2:]], 0))  # example i's rows at i k .. i k + k - 1
        outputs = dense_forward(rowwise.network, flat, record)

    def head_gradients(example):
        example_outputs, values = example
        with tf.GradientTape() as head_tape:
            head_tape.watch(example_outputs)
            loss = rowwise.head(example_outputs, *[value[None] for value in values])
        return head_tape.gradient(loss, example_outputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    # The head's gradients are taken inside the vectorised map, not through it: differentiating
    # the map's output has XLA compile the step anew at every call.
    by_example = tf.nest.map_structure(
        lambda output: tf.reshape(output, tf.concat([[batch, per_example], tf.shape(output)[1:]], 0)), outputs)
    seeds = tf.nest.map_structure(lambda seed, output: tf.reshape(seed, tf.shape(output)),
                                  tf.vectorized_map(head_gradients, (by_example, tuple(inputs))), outputs)
    gradients = tape.gradient(tf.nest.flatten(outputs), [z for _, _, z in calls], output_gradients=tf.nest.flatten(seeds),
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)

    seen = {}  # id of a dense layer -> its rows' inputs and output gradients, (batch, T, units) each
    for (layer, x, _), g in zip(calls, gradients):
        positions = per_example
        for size in x.shape[1:-1]:
            positions = None if positions is None or size is None else positions * size
        shape = [batch, -1 if positions is None else positions]
        a = tf.cast(tf.cast(x, layer.compute_dtype), tf.float32)  # what the layer multiplied
        entry = (tf.reshape(a, [*shape, a.shape[-1]]), tf.reshape(tf.cast(g, tf.float32), [*shape, g.shape[-1]]))
        if id(layer) in seen:
            entry = tuple(tf.concat([old, new], axis=1) for old, new in zip(seen[id(layer)], entry))
        seen[id(layer)] = entry

    squares = []
    for layer, is_kernel in plan:
        a, g = seen[id(layer)]
        if is_kernel:
            squares.append(kernel_squares(a, g))
        else:
            squares.append(tf.reduce_sum(tf.square(tf.reduce_sum(g, axis=1)), axis=1))
    norms = tf.sqrt(tf.add_n(squares))
    factors = clip_factors(norms, l2_norm_clip)[:, None, None]
    sums = []
    for layer, is_kernel in plan:
        a, g = seen[id(layer)]
        weighted = g * factors
        if is_kernel:
            sums.append(tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(weighted, [-1, g.shape[-1]]),
                                  transpose_a=True))
        else:
            sums.append(tf.reduce_sum(weighted, axis=[0, 1]))
    return sums, norms


def example_clipped_sum(loss, inputs, variables, l2_norm_clip, rowwise=None):
    """The sum over the examples of `inputs` of each one's gradient of `loss` clipped to L2 norm
    `l2_norm_clip`, the norms before clipping, and which examples were clipped: from one batched
    pass where `rowwise` is given and `dense_plan` accepts its network and `variables`
    (`rowwise_clipped_sum`), otherwise from every example's gradient (`per_example_gradients`,
    `clipped_sum`). Chosen in Python, when the step is traced.

    Where `loss` returns k terms, each term's gradient is clipped to `l2_norm_clip / k` on its own
    and the k added, so an example still moves the sum by at most `l2_norm_clip`, and a term whose
    gradient is small beside another's keeps its share instead of being scaled down with it (a
    class head's term beside the adversarial one). An example's norm is then that of its terms'
    gradients together, and it counts as clipped when any term was."""
    plan = None if rowwise is None else dense_plan(rowwise.network, variables)
    if plan is not None:
        sums, norms = rowwise_clipped_sum(rowwise, inputs, plan, l2_norm_clip)
        return sums, norms, norms > l2_norm_clip
    gradients = per_example_gradients(loss, inputs, variables)
    terms = gradients if isinstance(gradients, tuple) else (gradients,)
    share = l2_norm_clip / len(terms)
    parts = [clipped_sum([tf.cast(g, tf.float32) for g in term], share) for term in terms]
    sums = [tf.add_n(list(totals)) for totals in zip(*(part_sums for part_sums, _ in parts))]
    norms = tf.sqrt(tf.add_n([tf.square(part_norms) for _, part_norms in parts]))
    clipped = tf.reduce_any(tf.stack([part_norms > share for _, part_norms in parts]), axis=0)
    return sums, norms, clipped


def clipped_mean_gradients(loss, inputs, variables, l2_norm_clip, rowwise=None):
    """Each example's gradient of `loss` clipped to `l2_norm_clip` as in `private_gradients`, summed
    and divided by the global batch, with no noise: for terms that read no real example (a GAN's
    generated examples), kept on the scale of the clipped real ones they are added to."""
    replicas, _ = streams.replicas()
    sums, _, _ = example_clipped_sum(loss, inputs, variables, l2_norm_clip, rowwise)
    global_batch = tf.cast(tf.shape(inputs[0])[0] * replicas, tf.float32)
    return [total / global_batch for total in sums]


def private_gradients(loss, inputs, variables, clipping: Clipping, seed, public=None, rowwise=None):
    """DP-SGD gradients of `variables`: each example's gradient of `loss` (see
    `per_example_gradients`; `inputs` hold this replica's share of the batch) clipped, summed,
    noised and divided by the global batch; plus `public`, plain gradients of terms that use no
    real example, if any.

    `rowwise`, a `RowwiseLoss` of the same loss, has the clipped sum computed from one batched
    pass (`rowwise_clipped_sum`) where `dense_plan` accepts its network and `variables`; otherwise,
    or without it, every example's gradient is computed (`per_example_gradients`). The choice is
    made once, in Python, when the step is traced.

    `seed` is a stateless seed (shape [2]); each replica draws its own noise from it, of variance
    1/replicas of the total, so that the sum the optimizer takes over the replicas carries noise of
    standard deviation `noise_multiplier * l2_norm_clip`, as on one device.
    """
    replicas, replica = streams.replicas()
    sums, norms, clipped = example_clipped_sum(loss, inputs, variables, clipping.l2_norm_clip, rowwise)
    global_batch = tf.cast(tf.shape(inputs[0])[0] * replicas, tf.float32)
    deviation = clipping.noise_multiplier * clipping.l2_norm_clip / replicas ** 0.5
    seed = tf.cast(seed, tf.int32)
    results = []
    for index, total in enumerate(sums):
        noise_seed = tf.stack([seed[0] + replica * 100_003 + index, seed[1]])
        noise = tf.random.stateless_normal(tf.shape(total), noise_seed, stddev=deviation)
        results.append((total + noise) / global_batch)
    if public is not None:
        results = [g + tf.cast(p, g.dtype) for g, p in zip(results, public)]
    results = [tf.cast(g, v.dtype) for g, v in zip(results, variables)]
    return results, {"clipped_share": tf.reduce_mean(tf.cast(clipped, tf.float32)),
                     "gradient_norm": tf.reduce_mean(norms)}


def public_gradients(tape, loss, variables):
    """Plain gradients of `loss` (a mean over this replica's examples) for the sum over replicas."""
    replicas, _ = streams.replicas()
    return tape.gradient(loss, tensorflow_variables(variables), output_gradients=tf.constant(1.0 / replicas, loss.dtype),
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)


def apply_private_gradients(loss, inputs, variables, optimizer, clipping: Clipping, seed, public=None,
                            rowwise=None) -> dict:
    """One DP-SGD update of `variables` by `optimizer` (see `private_gradients`); returns the
    share of examples clipped and their mean gradient norm, as metrics."""
    gradients, metrics = private_gradients(loss, inputs, variables, clipping, seed, public, rowwise)
    optimizer.apply_gradients(zip(gradients, variables))
    return metrics
