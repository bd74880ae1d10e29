"""What the discriminator learned: Grad-CAM, guided backprop, a linear probe, latent arithmetic."""
