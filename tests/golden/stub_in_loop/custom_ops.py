"""Hand-written implementations of TensorFlow ops that tf2torch could not translate.

This file is yours: tf2torch never overwrites or deletes a function here. When a
conversion needs an op that has no function yet, it appends a stub that raises
NotImplementedError. Fill in the body (PyTorch), and the model runs. Keep the first
line of each stub's docstring: it tells tf2torch which TensorFlow op the function
implements, whatever you rename around it.
"""

import torch  # noqa: F401


def my_fancy_activation(input_0, *, t="float32"):
    """TensorFlow op `MyFancyActivation`, which tf2torch did not translate.

    Reason: no translation for this op.
    Assumed: the result has the rank of its first tensor input (a handle is none) and the dtype its attributes give (else that input's); the code after this op was translated that way.

    Used by:
      - while/body/_1/while/fancy: inputs (float32 [?, 4]) -> float32 [?, ?]
        T = float32

    Tensors are in TensorFlow's layout (NHWC for images); return the same.
    """
    raise NotImplementedError(
        "custom_ops.py: implement my_fancy_activation (TF op MyFancyActivation)"
    )
