"""Training OCTA-Net: data, augmentation, losses, the two-stage loop, data-parallel support."""
