"""Locust load test: users upload a mix of real clips to /predict.

    locust -f loadtests/locustfile.py --headless -u 16 -r 4 -t 60s --host http://localhost:3000

Clips come from SER_DATA_DIR (default ../shared/data; a generated voice without it): FLAC, 48 kHz and 16 kHz
stereo WAV, MP3, OGG and a 12 s WAV with segments. Any non-200 answer, or a 200 without an
emotion, counts as a failure; locust then exits with status 1.
"""

from __future__ import annotations

import random

from locust import HttpUser, between, events, task

from loadtests.clips import mixed_clips

CLIPS: list[tuple[str, bytes, str]] = []


@events.init.add_listener
def load_clips(environment, **_kwargs) -> None:
    CLIPS.extend(mixed_clips())


class Uploader(HttpUser):
    wait_time = between(0.0, 0.2)

    @task
    def predict(self) -> None:
        name, data, ctype = random.choice(CLIPS)
        with self.client.post("/predict", files={"audio": (name, data, ctype)}, name=f"/predict [{name.rsplit('.', 1)[-1]}]",
                              catch_response=True) as response:  # fmt: skip
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif "emotion" not in response.json():
                response.failure("no emotion in the answer")
            else:
                response.success()
