"""Rate-distortion evaluation of saliency-driven encoding (``salrt rd``): content-free and classic
saliency baselines (:mod:`.baselines`), quality measured by libvmaf and attention-weighted PSNR
(:mod:`.quality`), Bjøntegaard-delta rates (:mod:`.bdrate`), the report (:mod:`.report`)."""
