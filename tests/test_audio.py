"""Decoding: every supported container, depth, rate and channel count; every refusal."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from ser.audio import AudioError, load_audio
from ser.config import SAMPLE_RATE
from tests.audio_factory import FFMPEG_FORMATS, encode, encode_ffmpeg, read_mono, resampled


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
     ("WAV", "DOUBLE"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")],
)  # fmt: skip
def test_formats_decode_to_the_same_speech(speech_clip, fmt, subtype):
    samples, rate = read_mono(speech_clip)
    reference = load_audio(encode(samples, rate, "WAV", "FLOAT"))
    got = load_audio(encode(samples, rate, fmt, subtype))
    assert got.dtype == np.float32 and got.ndim == 1
    # lossy codecs shift the signal by an encoder delay; compare length and loudness
    assert abs(len(got) - len(reference)) < 0.1 * SAMPLE_RATE
    assert np.sqrt(np.mean(got**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.1)


@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_pcm_decodes_to_libsndfiles_own_floats(speech_clip, channels):
    """16-bit PCM is scaled by numpy, not libsndfile: the samples must be the same floats."""
    from ser.audio import _read_blocks

    data = resampled(speech_clip, 48_000, channels=channels)
    with sf.SoundFile(io.BytesIO(data)) as f:
        assert f.subtype == "PCM_16"
        ours = np.concatenate(list(_read_blocks(f, 10_000)))
    theirs = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0]
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(("channels", "rate"), [(1, 48_000), (2, 44_100), (1, 16_000)])
def test_16_bit_wav_read_by_the_standard_library_equals_libsndfiles(speech_clip, monkeypatch, channels, rate):
    """16-bit PCM WAV skips libsndfile (ser.audio._pcm16_wav): the decoded clip must be the
    same floats either way, and a file whose data is cut short goes to libsndfile."""
    from ser import audio

    data = resampled(speech_clip, rate, channels=channels)
    assert audio._pcm16_wav(data) is not None
    fast = load_audio(data)
    monkeypatch.setattr(audio, "_pcm16_wav", lambda _data: None)  # libsndfile's path
    np.testing.assert_array_equal(fast, load_audio(data))
    monkeypatch.undo()
    cut = data[: len(data) - 1001]  # the header still claims every frame, and half a sample is lost
    assert audio._pcm16_wav(cut) is None
    assert 0 < len(fast) - len(load_audio(cut)) < SAMPLE_RATE / 20  # 1,001 bytes: at most 23 ms


def test_other_wavs_are_left_to_libsndfile(speech_clip):
    from ser.audio import _pcm16_wav

    samples, rate = read_mono(speech_clip)
    for subtype in ("PCM_U8", "PCM_24", "FLOAT", "ULAW"):
        assert _pcm16_wav(encode(samples, rate, "WAV", subtype)) is None, subtype
    assert _pcm16_wav(encode(samples, rate, "RF64", "PCM_16")) is None


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000])
def test_any_rate_resamples_to_model_rate(speech_clip, rate):
    samples = load_audio(resampled(speech_clip, rate))
    duration = read_mono(speech_clip)[0].shape[0] / sf.info(speech_clip).samplerate
    assert samples.shape[0] == pytest.approx(duration * SAMPLE_RATE, abs=2)


@pytest.mark.parametrize("channels", [2, 6])
def test_channels_are_downmixed(speech_clip, channels):
    mono = load_audio(resampled(speech_clip, 48_000))
    multi = load_audio(resampled(speech_clip, 48_000, channels=channels))
    np.testing.assert_allclose(multi, mono, atol=1e-4)


def _error(data: bytes, **kw) -> AudioError:
    with pytest.raises(AudioError) as info:
        load_audio(data, **kw)
    return info.value


def test_empty_file():
    e = _error(b"")
    assert (e.code, e.status) == ("empty_file", 400)


@pytest.mark.parametrize("payload", [b"<html><body>hi</body></html>", b'{"a": 1}', b"PK\x03\x04" + b"\0" * 100,
                                     b"\x89PNG\r\n\x1a\n" + b"\0" * 100, bytes(range(256)) * 8])  # fmt: skip
def test_not_audio(payload):
    e = _error(payload)
    assert e.status in (400, 415) and e.code in ("unsupported_format", "corrupt_audio")


def test_truncated_flac_is_refused_or_shorter(speech_clip):
    data = speech_clip.read_bytes()
    e = _error(data[:200])
    assert e.status in (400, 415, 422)


def test_nan_samples():
    samples = np.full(SAMPLE_RATE, np.nan, dtype=np.float32)
    e = _error(encode(samples, SAMPLE_RATE, "WAV", "FLOAT"))
    assert (e.code, e.status) == ("invalid_samples", 422)


def test_infinite_samples():
    samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples[100] = np.inf
    assert _error(encode(samples, SAMPLE_RATE, "WAV", "FLOAT")).code == "invalid_samples"


def test_too_short():
    samples = (0.1 * np.sin(np.arange(2000) / 5)).astype(np.float32)
    e = _error(encode(samples, 16_000))
    assert (e.code, e.status) == ("too_short", 422)
    assert "0.12 s" in e.message


def test_too_long():
    samples = (0.1 * np.sin(np.arange(16_000 * 12) / 5)).astype(np.float32)
    e = _error(encode(samples, 16_000), max_seconds=10)
    assert (e.code, e.status) == ("too_long", 413)


def test_silence():
    e = _error(encode(np.zeros(16_000 * 2, dtype=np.float32), 16_000))
    assert (e.code, e.status) == ("silent_audio", 422)


def _wav_header(rate: int, channels: int, bits: int = 16, data_size: int = 1000) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", min(36 + data_size, 0xFFFFFFFF)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_size))  # fmt: skip


@pytest.mark.parametrize(("rate", "code"), [(4_000, "unsupported_sample_rate"), (1, None), (10_000_000, None)])
def test_sample_rates_out_of_range(rate, code):
    e = _error(_wav_header(rate, 1) + b"\1\0" * 500)
    assert 400 <= e.status < 500
    if code:
        assert e.code == code


def test_lying_data_size_is_bounded():
    # header claims 4 GB of samples; only 1 s is present
    e_or_samples = _wav_header(16_000, 1, data_size=0xFFFFFFF0) + (0.1 * np.ones(16_000) * 32767).astype("<i2").tobytes()
    try:
        samples = load_audio(e_or_samples)
        assert samples.shape[0] <= 1.01 * SAMPLE_RATE
    except AudioError as e:
        assert 400 <= e.status < 500


def test_error_message_names_the_problem():
    e = _error(b"not audio at all" * 10)
    assert "WAV" in e.message and "MP3" in e.message
    assert str(e).startswith(e.code)


def test_file_object_and_path_sources(speech_clip):
    a = load_audio(speech_clip)
    b = load_audio(io.BytesIO(speech_clip.read_bytes()))
    np.testing.assert_array_equal(a, b)


def _mp3_claiming(seconds: float, rate: int = 22_050) -> bytes:
    """A real 1 s MP3 whose Xing header's frame count claims `seconds`."""
    t = np.arange(rate) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(buf.getvalue())
    i = data.find(b"Xing")
    assert i >= 0 and data[i + 7] & 1, "libsndfile's MP3 should carry a Xing frame count"
    data[i + 8 : i + 12] = int(seconds * rate / 576).to_bytes(4, "big")  # MPEG-2 layer III: 576 samples a frame
    return bytes(data)


def test_header_overstating_length_uses_only_decoded_frames():
    """A 1 s MP3 claiming 599 s: the old block reader yielded its reused buffer until the
    claimed count ran out (599 s of stale samples, some from earlier decodes)."""
    lying = _mp3_claiming(599)
    assert sf.info(io.BytesIO(lying)).duration > 590  # libsndfile believes the header
    first, second = load_audio(lying), load_audio(lying)
    assert first.shape[0] / SAMPLE_RATE == pytest.approx(1.0, abs=0.1)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("kind", sorted(FFMPEG_FORMATS))
def test_browser_and_phone_formats_decode_to_the_same_speech(speech_clip, kind):
    """What MediaRecorder, voice-memo apps and FFmpeg write, from real speech."""
    samples, rate = read_mono(speech_clip)
    reference = load_audio(encode(samples, rate, "WAV", "FLOAT"))
    got = load_audio(encode_ffmpeg(samples, rate, kind, channels=2))
    assert abs(len(got) - len(reference)) < 0.1 * SAMPLE_RATE
    assert np.sqrt(np.mean(got**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.1)


@pytest.mark.parametrize("kind", ["webm-opus", "m4a-aac", "aac-adts"])
def test_truncated_and_garbled_containers_are_refused(speech_clip, kind):
    data = encode_ffmpeg(*read_mono(speech_clip), kind)
    for broken in (data[:40], data[: len(data) // 3], data[:16] + bytes(range(256)) * 40):
        try:
            samples = load_audio(broken)  # a decoder may recover a shorter prefix: fine
            assert samples.shape[0] < 4.0 * SAMPLE_RATE
        except AudioError as e:
            assert 400 <= e.status < 500 and e.code in {"corrupt_audio", "no_audio", "too_short"}


def test_webm_claiming_hours_decodes_what_is_there(speech_clip):
    """Matroska's Duration element says 5 hours: refused by the claim, never decoded as hours."""
    data = bytearray(encode_ffmpeg(*read_mono(speech_clip), "webm-opus"))
    i = data.find(b"\x44\x89\x88")  # Duration, 8-byte float, in milliseconds
    assert i > 0
    data[i + 3 : i + 11] = struct.pack(">d", 5 * 3600 * 1000.0)
    e = _error(bytes(data))
    assert e.status == 413 and e.code == "too_long"


def test_m4a_with_a_huge_sample_table_is_refused(speech_clip):
    """stsz claims 2^28 samples that the file doesn't hold."""
    data = bytearray(encode_ffmpeg(*read_mono(speech_clip), "m4a-aac"))
    i = data.find(b"stsz")
    assert i > 0
    data[i + 12 : i + 16] = (1 << 28).to_bytes(4, "big")  # version/flags, sample size, count
    try:
        samples = load_audio(bytes(data))
        assert samples.shape[0] < 5 * SAMPLE_RATE
    except AudioError as e:
        assert 400 <= e.status < 500


@pytest.mark.parametrize(("fmt", "subtype"), [("W64", "PCM_16"), ("CAF", "ALAC_16"), ("AU", "PCM_16"),
                                              ("VOC", "PCM_16"), ("NIST", "PCM_16"), ("IRCAM", "PCM_16"),
                                              ("MAT5", "PCM_16"), ("SVX", "PCM_16"), ("WAV", "GSM610")])  # fmt: skip
def test_containers_users_do_not_send_are_refused_by_content(speech_clip, fmt, subtype):
    """libsndfile could parse these; we refuse them by what the bytes are, not by name."""
    samples, rate = read_mono(speech_clip)
    e = _error(encode(samples, 8_000 if subtype == "GSM610" else rate, fmt, subtype))
    assert (e.status, e.code) == (415, "unsupported_format")


def test_decoding_work_is_bounded_by_samples_times_channels():
    """Within the duration limit, a file of many channels at a high rate is still refused:
    the budget is max_seconds of 48 kHz stereo (here 2 s: 192,000 samples)."""
    tone = 0.1 * np.sin(np.linspace(0, 2000, int(1.5 * 192_000), dtype=np.float32))
    e = _error(encode(tone, 192_000, "WAV", "PCM_16", channels=8), max_seconds=2.0)
    assert (e.status, e.code) == (413, "too_much_audio")
    assert load_audio(encode(tone[: 48_000 * 3 // 2], 48_000, "WAV", "PCM_16", channels=2), max_seconds=2.0).size


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04c11db7, not reflected, initial value 0."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_claiming(data: bytes, seconds: float, rate: int) -> bytes:
    """The last page's granule position set to `seconds`, its checksum recomputed."""
    data = bytearray(data)
    last = data.rfind(b"OggS")
    segments = data[last + 26]
    end = last + 27 + segments + sum(data[last + 27 : last + 27 + segments])
    data[last + 6 : last + 14] = int(seconds * rate).to_bytes(8, "little")
    data[last + 22 : last + 26] = bytes(4)
    data[last + 22 : last + 26] = _ogg_crc(bytes(data[last:end])).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize(("subtype", "granule_rate"), [("VORBIS", 24_000), ("OPUS", 48_000)])
def test_ogg_whose_last_granule_claims_599_s_decodes_what_is_there(subtype, granule_rate):
    """The Ogg half of the stale-memory defect: libsndfile believes an Opus stream's last
    granule (599 s here); only decoded frames may count."""
    t = np.arange(24_000) / 24_000
    one_second = encode((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24_000, "OGG", subtype)
    lying = _ogg_claiming(one_second, 599, granule_rate)
    if subtype == "OPUS":
        assert sf.info(io.BytesIO(lying)).duration > 590
    try:
        first, second = load_audio(lying), load_audio(lying)
    except AudioError as e:  # refusing it is fine too; analysing stale memory is not
        assert e.status in (400, 413)
        return
    assert first.shape[0] / SAMPLE_RATE == pytest.approx(1.0, abs=0.1)
    np.testing.assert_array_equal(first, second)


def test_short_pcm_is_recognised_by_its_header_alone(speech_clip):
    """The server analyses short uncompressed recordings on its event loop: only PCM WAV or
    AIFF whose header says it is short enough qualifies; compressed or longer audio, and
    anything unreadable, does not."""
    from ser.audio import short_pcm_seconds

    samples, rate = read_mono(speech_clip)
    clip = samples[: 3 * rate]
    assert short_pcm_seconds(encode(clip, rate, "WAV", "PCM_16"), 6) == pytest.approx(3, abs=0.01)
    assert short_pcm_seconds(encode(clip, rate, "AIFF", "PCM_24"), 6) == pytest.approx(3, abs=0.01)
    assert short_pcm_seconds(encode(np.tile(clip, 3), rate, "WAV", "PCM_16"), 6) is None  # 9 s
    assert short_pcm_seconds(encode(clip, rate, "WAV", "PCM_16"), 0) is None  # turned off
    for fmt, subtype in (("FLAC", "PCM_16"), ("WAV", "ULAW"), ("WAV", "IMA_ADPCM"), ("OGG", "VORBIS")):
        assert short_pcm_seconds(encode(clip, rate, fmt, subtype), 6) is None, subtype
    assert short_pcm_seconds(encode(clip, rate, "WAV", "PCM_16")[:40], 6) is None  # a header cut short
    assert short_pcm_seconds(b"RIFF\x00\x00\x00\x00WAVE" + bytes(100), 6) is None
