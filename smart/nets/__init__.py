"""Generator and discriminator networks, built from the run config."""
from smart.nets.mlp import MLPDiscriminator, MLPGenerator


def _generator(cfg, sample_shape, num_classes):
    g = cfg.generator
    if g.arch == "mlp":
        return MLPGenerator(g.z_dim, sample_shape, g.hidden, g.layers)
    channels, res = sample_shape[0], sample_shape[-1]
    common = dict(z_dim=g.z_dim, w_dim=g.w_dim, img_resolution=res, img_channels=channels,
                  num_classes=num_classes, channel_base=g.channel_base, channel_max=g.channel_max,
                  mapping_layers=g.mapping_layers)
    if g.arch == "stylegan2":
        from smart.nets.stylegan2 import StyleGAN2Generator

        return StyleGAN2Generator(**common)
    from smart.nets.aurora import AuroraGenerator

    return AuroraGenerator(**common, num_experts=g.num_experts, attn_resolutions=tuple(g.attn_resolutions),
                           num_heads=g.num_heads)


def _discriminator(cfg, sample_shape, num_classes):
    d = cfg.discriminator
    if d.arch == "mlp":
        return MLPDiscriminator(sample_shape, d.hidden, d.layers)
    from smart.nets.stylegan2 import StyleGAN2Discriminator

    return StyleGAN2Discriminator(img_resolution=sample_shape[-1], img_channels=sample_shape[0],
                                  num_classes=num_classes, channel_base=d.channel_base,
                                  channel_max=d.channel_max, mbstd_group=d.mbstd_group)


def build_networks(cfg, sample_shape, num_classes: int = 0):
    """(G, D) for data of `sample_shape` (without the batch dimension); num_classes > 0 makes
    the image nets class-conditional."""
    return _generator(cfg, sample_shape, num_classes), _discriminator(cfg, sample_shape, num_classes)


__all__ = ["MLPGenerator", "MLPDiscriminator", "build_networks"]
