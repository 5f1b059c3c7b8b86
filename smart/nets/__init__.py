"""Generator and discriminator networks, built from the run config."""
from smart.nets.mlp import MLPDiscriminator, MLPGenerator


def build_networks(cfg, sample_shape):
    """(G, D) for data of `sample_shape` (without the batch dimension)."""
    g, d = cfg.generator, cfg.discriminator
    return (
        MLPGenerator(g.z_dim, sample_shape, g.hidden, g.layers),
        MLPDiscriminator(sample_shape, d.hidden, d.layers),
    )


__all__ = ["MLPGenerator", "MLPDiscriminator", "build_networks"]
