"""Explaining trained models: what each output looks at.

``inputs``             the model (from a checkpoint) and normalised images the explainers run on, and the
                       stage outputs they read (``stage_output``)
``erf``                effective receptive field (Ding et al., RepLKNet, CVPR 2022; as in VMamba)
``cam``                Grad-CAM / Eigen-CAM heat maps
``hidden_attention``   the attention matrix hidden in an SSM (and a conv's / ViT's footprint for comparison)
``cli``                ``mambaout explain erf|cam|ssm-attention|compare``

Submodules are imported on use: ``import mambaout.explain`` loads nothing heavy.
"""
