"""
Post-capture exposure correction (issue 14): networks, pairs, losses, metrics, training.

- :mod:`.networks`: the encoder-decoder of paper 002 and the pix2pix generator /
  PatchGAN discriminator of paper 003;
- :mod:`.data`: pairs from the HDR scenes (a wrong exposure through the sensor model and
  the ISP, and the well-exposed reference), 003's gamma-space clipping;
- :mod:`.losses`: L1, total variation, LSGAN, the detector-backbone perceptual loss;
- :mod:`.metrics`: PSNR, SSIM (pytorch-msssim), 003's luminance / contrast / saturation
  similarities;
- :mod:`.baselines`: identity, trivial inverse, global gain / gamma to mid-grey, OpenCV
  Debevec merge + Reinhard tone map of three brackets;
- :mod:`.model`: loading a trained model (:func:`~.model.load_corrector`);
- :mod:`.train`: ``neural-ae train --config config/train_correction_*.yaml``.
"""
