"""Image restoration with the DCGAN design: super-resolution, denoising and deconvolution.

The seed paper ("Generating Video from Images using GANs", IJITEE 2020) ends by claiming that the
DCGAN design serves as one architecture for super-resolution, denoising and deconvolution. This
package makes the claim checkable: seeded degradations (`degrade`), tuned classical baselines
(`baselines`), a conditional encoder-decoder GAN in the paper's style (`model`, `train`), metrics
(`metrics`), restoring user images (`apply`) and the `ganimate restore` commands (`cli`).
"""
