"""The model families; importing this package registers every configuration."""
from zoo.models import spikformer  # noqa: F401  (registers the Spikformer configurations)
from zoo.models import qkformer  # noqa: F401  (registers the QKFormer configurations)
from zoo.models import msvit  # noqa: F401  (registers the MSViT configurations)
from zoo.models import sdt  # noqa: F401  (registers the Spike-driven Transformer v1 configurations)
from zoo.models import sdt_v2  # noqa: F401  (registers the Meta-SpikeFormer (SDT v2) configurations)
from zoo.models import sdt_v3  # noqa: F401  (registers the E-SpikeFormer (SDT v3) configurations)
from zoo.models import spikingresformer  # noqa: F401  (registers the SpikingResformer configurations)
from zoo.models import swformer  # noqa: F401  (registers the Spiking Wavelet Transformer configurations)
