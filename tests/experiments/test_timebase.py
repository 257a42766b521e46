import numpy as np
import pytest

from experiments import timebase


class TestConversions:
    def test_round_trip(self):
        frames = np.arange(0, 1000, 7)
        assert np.array_equal(timebase.seconds_to_frames(timebase.frames_to_seconds(frames, 22050 / 512), 22050 / 512), frames)

    def test_rounding_modes(self):
        assert timebase.seconds_to_frames(0.149, 10) == 1
        assert timebase.seconds_to_frames(0.151, 10) == 2
        assert timebase.seconds_to_frames(0.19, 10, rounding="floor") == 1
        assert timebase.seconds_to_frames(0.19, 10, rounding="none") == pytest.approx(1.9)
        with pytest.raises(ValueError, match="rounding"):
            timebase.seconds_to_frames(1.0, 10, rounding="up")

    def test_num_frames_covers_duration(self):
        assert timebase.num_frames(1.0, 10) == 11  # centres 0.0, 0.1, ..., 1.0
        assert timebase.num_frames(0.0, 10) == 1

    def test_samples(self):
        assert timebase.seconds_to_samples(1.0, 22050) == 22050
        assert timebase.samples_to_seconds(11025, 22050) == 0.5


class TestResampleFrames:
    def test_identity_when_rates_match(self):
        values = np.random.default_rng(0).random((50, 3)).astype(np.float32)
        out = timebase.resample_frames(values, 43.0, 43.0, 50)
        np.testing.assert_allclose(out, values, rtol=1e-6)

    def test_linear_signal_is_exact(self):
        t = timebase.frame_times(100, 40.0)
        values = np.stack([t, 2 * t], axis=1)
        out = timebase.resample_frames(values, 40.0, 10.0)
        expected_t = timebase.frame_times(len(out), 10.0)
        np.testing.assert_allclose(out[:, 0], expected_t)
        np.testing.assert_allclose(out[:, 1], 2 * expected_t)

    def test_rank_check(self):
        with pytest.raises(ValueError, match=r"\(T, D\)"):
            timebase.resample_frames(np.zeros(5), 10, 5)
