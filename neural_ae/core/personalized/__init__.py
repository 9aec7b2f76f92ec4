"""
Personalized exposure control (Yang et al., TVCG 2018; issue 12).

- :mod:`.policy`: SqueezeNet 1.1 to fire7 + adaptive metering (EM x IM), model files;
- :mod:`.experts`: six simulated exposure preferences from an HDR scene;
- :mod:`.data`: exact exposure variants of HDR scenes (seeds 3,700,000 / 3,800,000 /
  3,900,000 ..);
- :mod:`.rewards`: under / well / over labels, the Fig. 6 reward, REINFORCE;
- :mod:`.config`, :mod:`.training`: stage 1 (supervised) and stage 2 (policy gradient);
- :mod:`.study`: Tables 3-6 and the figures;
- :mod:`.online`: online personalization from feedback (the node's).

The controller is :mod:`neural_ae.core.controllers.personalized`.
"""
