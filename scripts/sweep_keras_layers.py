"""Converts small Keras 3 models built the way keras.io's examples build them (MLP-Mixer,
ViT with patch extraction, PointNet, DeepLabV3+, CCT, ConvLSTM, masked and bidirectional
RNNs, EDSR/ESPCN, Perceiver, gMLP, involution, Zero-DCE, a Siamese network, ViViT, NeRF,
structured data, BiT's weight standardisation; keras.io's diffusion U-Net and Switch
Transformer are test fixtures) and one model per family of layer kinds the other sweeps
leave out (1-D and 3-D transposed convolutions, attention over two axes, EinsumDense,
RMSNormalization, MelSpectrogram, top-k, any-size inputs), and compares each with
TensorFlow at two batch sizes: a measure of the general case, not a test. Norm statistics,
scales and biases are randomised; inputs of masked models hold padded (zero) steps.

    .venv/bin/python scripts/sweep_keras_layers.py [--out DIR] [MODEL ...]   # default: all

Prints one line per model: parity (max relative error) or why it failed, and the size of
the generated model.py.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF runs channels-first (NCHW) convolutions on the CPU only through oneDNN, which it turns
# on by itself only on CPUs with AVX-512: on everywhere, so the same models build anywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

MODELS = {}


def model(f):
    MODELS[f.__name__] = f
    return f


# Each builder returns the model and, per input, its shape without the batch axis (None for
# a size given at run time), whether it holds token ids and whether it has padded steps.


def floats(*shape, padded=False):
    return (shape, "float32", padded)


def tokens(*shape, padded=False):
    return (shape, "int32", padded)


@model
def mlp_mixer():
    from keras import Input, Model, layers

    x = inp = Input((32, 32, 3), name="images")
    x = layers.Reshape((64, 32))(layers.Conv2D(32, 4, strides=4)(x))
    for _ in range(2):
        y = layers.Permute((2, 1))(layers.LayerNormalization(epsilon=1e-6)(x))
        y = layers.Dense(64)(layers.Dense(64, activation="gelu")(y))
        x = layers.Add()([x, layers.Permute((2, 1))(y)])
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        x = layers.Add()([x, layers.Dense(32)(layers.Dense(64, activation="gelu")(y))])
    x = layers.GlobalAveragePooling1D()(x)
    return Model(inp, layers.Dense(10)(x)), [floats(32, 32, 3)]


def transformer_block(x, heads, key_dim, width, eps):
    from keras import activations, layers

    y = layers.LayerNormalization(epsilon=eps)(x)
    x = layers.Add()([layers.MultiHeadAttention(heads, key_dim, dropout=0.1)(y, y), x])
    y = layers.LayerNormalization(epsilon=eps)(x)
    y = layers.Dense(width * 2, activation=activations.gelu)(y)
    return layers.Add()([layers.Dense(width)(layers.Dropout(0.1)(y)), x])


@model
def vit_patches():
    """keras.io's ViT: patches by `ops.image.extract_patches`, a learned position embedding."""
    from keras import Input, Model, layers, ops

    class Patches(layers.Layer):
        def call(self, images):
            patches = ops.image.extract_patches(images, size=8)
            n, c = patches.shape[1] * patches.shape[2], patches.shape[3]
            return ops.reshape(patches, (ops.shape(images)[0], n, c))

    class PatchEncoder(layers.Layer):
        def __init__(self, n, d, **kw):
            super().__init__(**kw)
            self.n, self.proj, self.pos = n, layers.Dense(d), layers.Embedding(n, d)

        def call(self, x):
            return self.proj(x) + self.pos(ops.expand_dims(ops.arange(0, self.n, 1), 0))

    x = inp = Input((32, 32, 3), name="images")
    x = PatchEncoder(16, 32)(Patches()(x))
    for _ in range(2):
        x = transformer_block(x, 4, 8, 32, 1e-6)
    x = layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(x))
    return Model(inp, layers.Dense(10)(x)), [floats(32, 32, 3)]


@model
def cct():
    """keras.io's Compact Convolutional Transformer: a conv tokenizer and sequence pooling."""
    from keras import Input, Model, layers, ops

    class SeqPool(layers.Layer):
        def build(self, shape):
            self.score = layers.Dense(1)

        def call(self, x):
            w = ops.softmax(self.score(x), axis=1)
            return ops.squeeze(ops.matmul(ops.transpose(w, (0, 2, 1)), x), -2)

    x = inp = Input((32, 32, 3), name="images")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", use_bias=False)(x)
    x = layers.MaxPooling2D(3, 2, "same")(layers.ZeroPadding2D(1)(x))
    x = layers.Reshape((-1, 32))(x)
    for _ in range(2):
        x = transformer_block(x, 2, 16, 32, 1e-5)
    x = SeqPool()(layers.LayerNormalization(epsilon=1e-5)(x))
    return Model(inp, layers.Dense(10)(x)), [floats(32, 32, 3)]


@model
def text_transformer():
    """keras.io's text classifier: token and position embeddings over any length."""
    from keras import Input, Model, layers, ops

    class TokenAndPosition(layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.tok, self.pos = layers.Embedding(100, 16), layers.Embedding(32, 16)

        def call(self, x):
            return self.tok(x) + self.pos(ops.arange(0, ops.shape(x)[-1], 1))

    x = inp = Input((None,), dtype="int32", name="tokens")
    x = TokenAndPosition()(x)
    x = layers.LayerNormalization(epsilon=1e-6)(
        x + layers.MultiHeadAttention(2, 16)(x, x)
    )
    y = layers.Dense(16)(layers.Dense(32, activation="relu")(x))
    x = layers.GlobalAveragePooling1D()(layers.LayerNormalization(epsilon=1e-6)(x + y))
    return Model(inp, layers.Dense(2, activation="softmax")(x)), [tokens(None)]


@model
def pointnet():
    """keras.io's PointNet: T-Nets whose 3x3 and 16x16 transforms multiply the points."""
    import numpy as np
    from keras import Input, Model, initializers, layers

    def conv_bn(x, f):
        return layers.Activation("relu")(
            layers.BatchNormalization()(layers.Conv1D(f, 1)(x))
        )

    def dense_bn(x, f):
        return layers.Activation("relu")(
            layers.BatchNormalization()(layers.Dense(f)(x))
        )

    def tnet(x, k):
        y = dense_bn(layers.GlobalMaxPooling1D()(conv_bn(conv_bn(x, 16), 32)), 16)
        eye = initializers.Constant(np.eye(k).flatten())
        y = layers.Dense(k * k, kernel_initializer="zeros", bias_initializer=eye)(y)
        return layers.Dot(axes=(2, 1))([x, layers.Reshape((k, k))(y)])

    x = inp = Input((64, 3), name="points")
    x = tnet(conv_bn(conv_bn(tnet(x, 3), 16), 16), 16)
    x = dense_bn(layers.GlobalMaxPooling1D()(conv_bn(x, 32)), 16)
    return Model(inp, layers.Dense(5)(layers.Dropout(0.3)(x))), [floats(64, 3)]


@model
def deeplab_v3_plus():
    """Dilated convolutions, image pooling and bilinear upsampling, concatenated."""
    from keras import Input, Model, layers

    def cb(x, f, k=3, d=1):
        x = layers.Conv2D(f, k, dilation_rate=d, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    x = inp = Input((64, 64, 3), name="images")
    low = layers.MaxPooling2D(2)(cb(cb(x, 8), 8))
    high = layers.MaxPooling2D(4)(cb(low, 16))
    pool = cb(layers.AveragePooling2D(pool_size=(8, 8))(high), 16, k=1)
    pool = layers.UpSampling2D(size=(8, 8), interpolation="bilinear")(pool)
    branches = [pool, cb(high, 16, 1), cb(high, 16, 3, 2), cb(high, 16, 3, 4)]
    a = cb(layers.Concatenate()(branches), 16, 1)
    a = layers.UpSampling2D(size=(4, 4), interpolation="bilinear")(a)
    y = cb(cb(layers.Concatenate()([a, cb(low, 8, 1)]), 16), 16)
    y = layers.UpSampling2D(size=(2, 2), interpolation="bilinear")(y)
    return Model(inp, layers.Conv2D(5, 1)(y)), [floats(64, 64, 3)]


@model
def preprocessing_cnn():
    """Rescaling, CenterCrop and Resizing in the model; group and unit normalization."""
    from keras import Input, Model, layers

    x = inp = Input((40, 40, 3), name="images")
    x = layers.Resizing(24, 24)(
        layers.CenterCrop(32, 32)(layers.Rescaling(1 / 127.5, offset=-1)(x))
    )
    x = layers.Activation("swish")(
        layers.GroupNormalization(groups=4)(layers.Conv2D(8, 3, padding="same")(x))
    )
    x = layers.UnitNormalization(axis=-1)(
        layers.SeparableConv2D(16, 3, strides=2, padding="same")(x)
    )
    x = layers.GlobalMaxPooling2D()(
        layers.Conv2DTranspose(8, 3, strides=2, padding="same")(x)
    )
    return Model(inp, layers.Dense(4)(x)), [floats(40, 40, 3)]


@model
def window_shift():
    """Swin's shifted windows: a roll, then windows by reshapes and permutes, and back."""
    from keras import Input, Model, layers, ops

    class Shift(layers.Layer):
        def call(self, x):
            return ops.roll(x, shift=(-2, -2), axis=(1, 2))

    x = inp = Input((16, 16, 3), name="images")
    x = Shift()(layers.Conv2D(16, 2, strides=2)(x))
    y = layers.Permute((1, 3, 2, 4, 5))(layers.Reshape((2, 4, 2, 4, 16))(x))
    y = layers.Dense(16, activation="gelu")(
        layers.LayerNormalization()(layers.Reshape((4, 16, 16))(y))
    )
    y = layers.Reshape((8, 8, 16))(
        layers.Permute((1, 3, 2, 4, 5))(layers.Reshape((2, 2, 4, 4, 16))(y))
    )
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, y]))
    return Model(inp, layers.Dense(10)(x)), [floats(16, 16, 3)]


@model
def conv_lstm_frames():
    from keras import Input, Model, layers

    x = inp = Input((3, 12, 12, 1), name="frames")
    x = layers.ConvLSTM2D(
        8, 3, padding="same", return_sequences=True, activation="relu"
    )(x)
    x = layers.ConvLSTM2D(8, 1, padding="same", return_sequences=True)(
        layers.BatchNormalization()(x)
    )
    return Model(inp, layers.Conv3D(1, 3, activation="sigmoid", padding="same")(x)), [
        floats(3, 12, 12, 1)
    ]


@model
def video_time_distributed():
    from keras import Input, Model, layers

    x = inp = Input((4, 16, 16, 3), name="frames")
    x = layers.TimeDistributed(layers.Conv2D(8, 3, activation="relu"))(x)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D())(
        layers.TimeDistributed(layers.MaxPooling2D())(x)
    )
    return Model(inp, layers.Dense(4)(layers.LSTM(8)(x))), [floats(4, 16, 16, 3)]


@model
def text_bigru_attention():
    from keras import Input, Model, layers

    x = inp = Input((12,), dtype="int32", name="tokens")
    h = layers.Bidirectional(layers.GRU(8, return_sequences=True))(
        layers.Embedding(50, 16)(x)
    )
    a = layers.GlobalAveragePooling1D()(layers.Attention()([h, h]))
    b = layers.GlobalMaxPooling1D()(layers.AdditiveAttention()([h, h]))
    return Model(inp, layers.Dense(3)(layers.Concatenate()([a, b]))), [tokens(12)]


@model
def masked_bidirectional_states():
    """Masking, a Bidirectional LSTM giving its states, a GRU going backwards."""
    from keras import Input, Model, layers

    x = inp = Input((7, 5), name="seq")
    lstm = layers.LSTM(6, return_sequences=True, return_state=True)
    seq, fh, _, _, bc = layers.Bidirectional(lstm, merge_mode="ave")(
        layers.Masking(0.0)(x)
    )
    y = layers.GRU(4, go_backwards=True)(seq)
    return Model(inp, [y, fh, bc]), [floats(7, 5, padded=True)]


@model
def masked_gru_stack():
    from keras import Input, Model, layers

    x = inp = Input((9, 5), name="seq")
    y = layers.GRU(6, return_sequences=True)(layers.Masking(0.0)(x))
    y = layers.GRU(4, return_sequences=True)(y)
    return Model(inp, [y, layers.LSTM(3)(y)]), [floats(9, 5, padded=True)]


@model
def attention_two_axes():
    from keras import Input, Model, layers

    x = inp = Input((6, 6, 8), name="images")
    y = layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))(x, x)
    x = layers.GlobalAveragePooling2D()(layers.Add()([x, y]))
    return Model(inp, layers.Dense(3)(x)), [floats(6, 6, 8)]


@model
def einsum_dense():
    from keras import Input, Model, layers

    x = inp = Input((5, 8), name="seq")
    y = layers.EinsumDense("abc,cde->abde", output_shape=(5, 2, 4), bias_axes="de")(x)
    z = layers.EinsumDense("abc,cd->abd", output_shape=(5, 6), bias_axes="d")(x)
    return Model(inp, layers.Concatenate()([layers.Reshape((5, 8))(y), z])), [
        floats(5, 8)
    ]


@model
def conv1d_family():
    from keras import Input, Model, layers

    x = inp = Input((32, 4), name="signal")
    x = layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same")(x)
    x = layers.SeparableConv1D(8, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1DTranspose(6, 4, strides=2, padding="same")(x)
    x = layers.Conv1D(4, 3, dilation_rate=2, padding="causal")(x)
    x = layers.Cropping1D((1, 2))(layers.UpSampling1D(3)(layers.AveragePooling1D(2)(x)))
    return Model(inp, x), [floats(32, 4)]


@model
def conv3d_transpose():
    from keras import Input, Model, layers

    x = inp = Input((4, 8, 8, 2), name="volume")
    x = layers.Conv3DTranspose(3, 3, strides=2, padding="same")(
        layers.Conv3D(4, 3, strides=2, padding="same")(x)
    )
    return Model(inp, layers.UpSampling3D(2)(layers.MaxPooling3D(2)(x))), [
        floats(4, 8, 8, 2)
    ]


@model
def rms_norms():
    from keras import Input, Model, layers

    x = inp = Input((10, 8), name="seq")
    x = layers.Dense(8, activation="silu")(layers.RMSNormalization(epsilon=1e-5)(x))
    x = layers.GlobalMaxPooling1D()(layers.Identity()(x))
    return Model(inp, layers.Dense(3)(x)), [floats(10, 8)]


@model
def mel_spectrogram():
    from keras import Input, Model, layers

    x = inp = Input((400,), name="audio")
    x = layers.MelSpectrogram(
        fft_length=64,
        sequence_stride=32,
        sequence_length=64,
        num_mel_bins=16,
        sampling_rate=8000,
    )(x)
    x = layers.GlobalAveragePooling1D()(layers.Conv1D(4, 3)(layers.Permute((2, 1))(x)))
    return Model(inp, layers.Dense(2)(x)), [floats(400)]


@model
def top_k_and_sort():
    from keras import Input, Model, layers, ops

    class Ranks(layers.Layer):
        def call(self, x):
            values, indices = ops.top_k(x, 3)
            order = ops.cast(ops.argsort(x, axis=-1)[:, :2], "float32")
            sums = ops.cumsum(x, axis=1)[:, -2:]
            return ops.concatenate(
                [values, ops.cast(indices, "float32"), order, sums], axis=1
            )

    x = inp = Input((9,), name="v")
    return Model(inp, layers.Dense(2)(Ranks()(x))), [floats(9)]


@model
def any_size_images():
    from keras import Input, Model, layers

    x = inp = Input((None, None, 3), name="images")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(
        layers.DepthwiseConv2D(3, padding="same")(x)
    )
    y = layers.GlobalAveragePooling2D(keepdims=True)(x)
    return Model(inp, layers.Multiply()([x, y])), [floats(None, None, 3)]


@model
def inference_noops():
    """Dropouts and noise, identities at inference; PReLU, ELU, LeakyReLU, Softmax."""
    from keras import Input, Model, layers

    x = inp = Input((12, 12, 3), name="images")
    x = layers.SpatialDropout2D(0.3)(layers.Conv2D(4, 3)(x))
    x = layers.GaussianDropout(0.2)(layers.GaussianNoise(0.1)(x))
    x = layers.ELU()(
        layers.PReLU()(layers.LeakyReLU(0.2)(layers.ActivityRegularization(0.01)(x)))
    )
    return Model(inp, layers.Flatten()(layers.Softmax(axis=-1)(x))), [floats(12, 12, 3)]


@model
def espcn_edsr():
    """keras.io's super-resolution models: EDSR residual blocks scaled by 0.1, then a
    sub-pixel (depth-to-space) upsampling as ESPCN does it."""
    import tensorflow as tf
    from keras import Input, Model, layers

    x = inp = Input((None, None, 3), name="images")
    x = y = layers.Conv2D(16, 3, padding="same")(layers.Rescaling(1 / 8)(x))
    for _ in range(2):
        r = layers.Conv2D(16, 3, padding="same", activation="relu")(y)
        r = layers.Conv2D(16, 3, padding="same")(r)
        y = layers.Add()([y, layers.Lambda(lambda t: t * 0.1)(r)])
    x = layers.Add()([x, layers.Conv2D(16, 3, padding="same")(y)])
    x = layers.Conv2D(3 * 4, 3, padding="same")(x)
    x = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)
    return Model(inp, layers.Rescaling(255)(ops_clip(x))), [floats(None, None, 3)]


def ops_clip(x):
    from keras import layers, ops

    return layers.Lambda(lambda t: ops.clip(t, -0.1, 0.1))(x)


@model
def perceiver():
    """keras.io's Perceiver: a learned latent array cross-attends to the inputs, then a
    latent transformer; the latents are broadcast to the batch."""
    from keras import Input, Model, layers, ops

    class Latents(layers.Layer):
        def build(self, shape):
            self.latents = self.add_weight(shape=(8, 16), initializer="random_normal")

        def call(self, x):
            b = ops.shape(x)[0]
            return ops.broadcast_to(ops.expand_dims(self.latents, 0), (b, 8, 16))

    x = inp = Input((32, 6), name="points")
    data = layers.Dense(16)(x)
    q = Latents()(x)
    a = layers.MultiHeadAttention(1, 16)(
        layers.LayerNormalization()(q), layers.LayerNormalization()(data)
    )
    x = layers.Add()([a, q])
    for _ in range(2):
        x = transformer_block(x, 2, 8, 16, 1e-6)
    x = layers.GlobalAveragePooling1D()(x)
    return Model(inp, layers.Dense(4)(x)), [floats(32, 6)]


@model
def gmlp():
    """keras.io's gMLP: a spatial gating unit projects across the patches (a Dense on the
    transposed sequence)."""
    from keras import Input, Model, layers, ops

    x = inp = Input((16, 12), name="patches")
    x = layers.Dense(16)(x)
    for _ in range(2):
        y = layers.Dense(32, activation="gelu")(
            layers.LayerNormalization(epsilon=1e-6)(x)
        )
        u, v = ops.split(y, 2, axis=2)
        v = layers.LayerNormalization(epsilon=1e-6)(v)
        v = layers.Permute((2, 1))(
            layers.Dense(16, bias_initializer="ones")(layers.Permute((2, 1))(v))
        )
        x = layers.Add()([x, layers.Dense(16)(layers.Multiply()([u, v]))])
    return Model(inp, layers.Dense(5)(layers.GlobalAveragePooling1D()(x))), [
        floats(16, 12)
    ]


@model
def involution():
    """keras.io's involution: a kernel generated per pixel, multiplied with the image's
    patches (`extract_patches`) and summed."""
    import tensorflow as tf
    from keras import Input, Model, layers

    class Involution(layers.Layer):
        def __init__(self, channel, group, k, **kw):
            super().__init__(**kw)
            self.c, self.g, self.k = channel, group, k
            self.gen = layers.Conv2D(k * k * group, 1)
            self.bn = layers.BatchNormalization()

        def call(self, x):
            h, w = x.shape[1], x.shape[2]
            kernel = self.gen(tf.nn.relu(self.bn(x)))
            kernel = tf.expand_dims(
                tf.reshape(kernel, (-1, h, w, self.k * self.k, self.g)), 4
            )
            patches = tf.image.extract_patches(
                x, [1, self.k, self.k, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"
            )
            patches = tf.reshape(
                patches, (-1, h, w, self.k * self.k, self.c // self.g, self.g)
            )
            out = tf.reduce_sum(kernel * patches, axis=3)
            return tf.reshape(out, (-1, h, w, self.c))

    x = inp = Input((12, 12, 4), name="images")
    x = Involution(4, 2, 3)(x)
    x = layers.ReLU()(x)
    x = Involution(4, 1, 3)(layers.MaxPooling2D()(x))
    return Model(inp, layers.Dense(3)(layers.Flatten()(x))), [floats(12, 12, 4)]


@model
def zero_dce():
    """keras.io's Zero-DCE: eight curve maps split from one conv, applied in turn as
    x + r * (x * x - x)."""
    from keras import Input, Model, layers, ops

    x = inp = Input((None, None, 3), name="images")
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    c2 = layers.Conv2D(8, 3, padding="same", activation="relu")(c1)
    c3 = layers.Conv2D(8, 3, padding="same", activation="relu")(
        layers.Concatenate()([c1, c2])
    )
    r = layers.Conv2D(24, 3, padding="same", activation="tanh")(c3)

    class Enhance(layers.Layer):
        def call(self, image, r):
            for part in ops.split(r, 8, axis=-1):
                image = image + part * (ops.square(image) - image)
            return image

    return Model(inp, Enhance()(x, r)), [floats(None, None, 3)]


@model
def siamese_distance():
    """keras.io's Siamese network: one tower applied to two images, the Euclidean distance
    between the embeddings (clamped before the square root), then a sigmoid."""
    from keras import Input, Model, layers, ops

    a = Input((16, 16, 1), name="left")
    b = Input((16, 16, 1), name="right")
    t = Input((16, 16, 1))
    y = layers.Conv2D(4, 5, activation="tanh")(layers.BatchNormalization()(t))
    y = layers.AveragePooling2D(2)(y)
    tower = Model(t, layers.Dense(10, activation="tanh")(layers.Flatten()(y)))

    def distance(v):
        s = ops.sum(ops.square(v[0] - v[1]), axis=1, keepdims=True)
        return ops.sqrt(ops.maximum(s, 1e-7))

    d = layers.Lambda(distance)([tower(a), tower(b)])
    d = layers.BatchNormalization()(d)
    return Model([a, b], layers.Dense(1, activation="sigmoid")(d)), [
        floats(16, 16, 1),
        floats(16, 16, 1),
    ]


@model
def vivit():
    """keras.io's ViViT: tubelets by a strided Conv3D, a position embedding, attention."""
    from keras import Input, Model, layers, ops

    class Position(layers.Layer):
        def build(self, shape):
            self.emb = layers.Embedding(shape[1], shape[2])

        def call(self, x):
            return x + self.emb(ops.arange(0, ops.shape(x)[1]))

    x = inp = Input((8, 16, 16, 1), name="video")
    x = layers.Conv3D(16, 4, strides=4)(x)
    x = Position()(layers.Reshape((-1, 16))(x))
    x = transformer_block(x, 2, 8, 16, 1e-6)
    x = layers.GlobalAvgPool1D()(layers.LayerNormalization(epsilon=1e-6)(x))
    return Model(inp, layers.Dense(4, activation="softmax")(x)), [floats(8, 16, 16, 1)]


@model
def nerf_mlp():
    """keras.io's NeRF: a positional encoding of sin and cos at doubling frequencies, an MLP
    with a skip connection."""
    from keras import Input, Model, layers, ops

    def encode(x):
        parts = [x]
        for i in range(4):
            for fn in (ops.sin, ops.cos):
                parts.append(fn(2.0**i * x))
        return ops.concatenate(parts, axis=-1)

    x = inp = Input((None, 3), name="rays")
    e = layers.Lambda(encode)(x)
    y = e
    for i in range(4):
        y = layers.Dense(32, activation="relu")(y)
        if i == 1:
            y = layers.Concatenate()([y, e])
    return Model(inp, layers.Dense(4)(y)), [floats(None, 3)]


@model
def structured_data():
    """keras.io's structured-data examples: CategoryEncoding (one-hot and multi-hot), a
    Discretization into buckets, an adapted Normalization and embeddings."""
    from keras import Input, Model, layers

    cat = Input((1,), dtype="int32", name="category")
    tags = Input((3,), dtype="int32", name="tags")
    num = Input((2,), name="numeric")
    one = layers.CategoryEncoding(num_tokens=40, output_mode="one_hot")(cat)
    multi = layers.CategoryEncoding(num_tokens=40, output_mode="multi_hot")(tags)
    count = layers.CategoryEncoding(num_tokens=40, output_mode="count")(tags)
    norm = layers.Normalization(mean=[0.5, -0.2], variance=[2.0, 0.3])(num)
    buckets = layers.Discretization(bin_boundaries=[-0.5, 0.0, 0.5])(num)
    emb = layers.Flatten()(layers.Embedding(4, 3)(buckets))
    x = layers.Concatenate()([one, multi, count, norm, emb])
    x = layers.Dense(8, activation="relu")(x)
    return Model([cat, tags, num], layers.Dense(1)(x)), [
        tokens(1),
        tokens(3),
        floats(2),
    ]


@model
def weight_standardized():
    """BiT's weight-standardised convolution (the kernel normalised on every call) with
    group norm, as keras.io's BigTransfer builds it."""
    import tensorflow as tf
    from keras import Input, Model, layers

    class StdConv(layers.Conv2D):
        def call(self, x):
            mean, var = tf.nn.moments(self.kernel, axes=[0, 1, 2], keepdims=True)
            k = (self.kernel - mean) / tf.sqrt(var + 1e-10)
            return tf.nn.conv2d(x, k, 1, "SAME") + self.bias

    x = inp = Input((16, 16, 3), name="images")
    x = StdConv(8, 3, padding="same")(x)
    x = layers.ReLU()(layers.GroupNormalization(4)(x))
    y = StdConv(8, 3, padding="same")(x)
    x = layers.Add()([x, layers.GroupNormalization(2)(y)])
    x = layers.GlobalAveragePooling2D()(x)
    return Model(inp, layers.Dense(3)(x)), [floats(16, 16, 3)]


def sweep(name, out_dir):
    import keras
    import numpy as np
    import tensorflow as tf
    from sweep import convert_and_compare, randomise, size, verdict, write_model

    keras.utils.set_random_seed(1)
    m, kinds = MODELS[name]()
    randomise(m, np.random.RandomState(3))
    r = np.random.RandomState(4)
    specs, feeds = [], [[], []]
    for (shape, dtype, padded), inp in zip(kinds, m.inputs):
        specs.append(tf.TensorSpec((None,) + shape, dtype, name=inp.name))
        for k, (batch, free) in enumerate([(2, 8), (1, 11)]):
            dims = (batch,) + tuple(free if d is None else d for d in shape)
            if dtype == "int32":
                v = r.randint(1, 30, dims).astype(np.int32)
            else:
                v = r.uniform(-1, 1, dims).astype(np.float32)
            if padded:
                v[0, -3:] = (
                    0  # trailing padded steps, and leading ones in the second row
                )
                v[1:, :2] = 0
            feeds[k].append(v)
    keys = [s.name for s in specs]
    write_model(
        out_dir,
        name,
        lambda *a: m(list(a) if len(a) > 1 else a[0], training=False),
        specs,
        feeds,
        track=m,
    )
    result = convert_and_compare(out_dir, name, keys)
    if isinstance(result, str):
        return result
    error, code = result
    return f"{verdict(error)}  ({size(code)})"


if __name__ == "__main__":
    from sweep import cli

    cli(__doc__, sweep, list(MODELS), "sweep_keras_layers", 28)
