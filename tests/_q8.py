"""docs/quantization.md's activation rows of the integer dot paths (int8 and int4 share
them) in torch, for references that compute a product's left operand themselves: the
same float32 operations as the C library. int4's per-group code sums only make the
integer sums exact; they change no value."""
import torch


def q8_rows(a):
    """Per row (last axis): the codes round-half-even(a * (127 / max|a|)) in float32 and
    the scale max|a| / 127; rows with max|a| < 2^-100: codes and scale 0."""
    amax = a.abs().amax(-1, keepdim=True)
    tiny = amax < 2.0 ** -100
    inv = torch.where(tiny, torch.zeros_like(amax), torch.tensor(127.0) / amax)
    return torch.round(a * inv).clamp(-127, 127), torch.where(tiny, torch.zeros_like(amax), amax / 127.0)


def fake_q8(a):
    """The rows dequantised: s * q."""
    q, s = q8_rows(a)
    return q * s


def fine_q8(a):
    """A layer's input rows (fine rows): s1 q1 plus the remainder a - s1 q1 quantised again."""
    q, s = q8_rows(a)
    return s * q + fake_q8(a - s * q)
