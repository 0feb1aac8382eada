"""Input-format constants shared by the models (their configs' defaults) and the media layer,
so neither imports the other for them."""

# VGGish log-mel slices of one clip: height x width of each (DiffSal's reference resizes to this)
SLICE_SIZE = (112, 192)
# Reference quirk kept for checkpoint fidelity: the clip excerpt is centred in a zero buffer of
# int(22050 / 10 * 16) samples at the file's *native* rate, so its duration depends on that rate.
REFERENCE_BUFFER = int(22050 / 10 * 16)
WAVEFORM_RATE = 22050  # SoundNet's sample rate (TAVDiff, AVRSP)
