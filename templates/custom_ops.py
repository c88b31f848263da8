"""Hand-written implementations of TensorFlow ops that tf2torch could not translate.

This file is yours: tf2torch never overwrites or deletes a function here. When a
conversion needs an op that has no function yet, it appends a stub that raises
NotImplementedError. Fill in the body (PyTorch), and the model runs. Keep the first
line of each stub's docstring: it tells tf2torch which TensorFlow op the function
implements, whatever you rename around it.
"""

import torch  # noqa: F401
{%- for stub in stubs %}


{{ stub }}
{%- endfor %}
