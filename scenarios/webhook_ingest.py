"""Users acting as a provider: signed Standard Webhooks POSTed to the receiver.

About 10% of sends (``--resend-ratio``) repeat the previous webhook-id, as a
provider's retry would, so the receiver's de-duplication is part of the load.
The receiver's secret comes from ``LABKIT_SECRET`` (or ``--webhook-secret``)::

    export LABKIT_SECRET=$(python -c "from labkit.wire.signing import new_secret; print(new_secret())")
    labkit serve receiver --port 8001 --secret "$LABKIT_SECRET" --db /tmp/labkit-receiver.db
    locust -f scenarios/webhook_ingest.py --headless -u 10 -r 5 -t 10s --host http://127.0.0.1:8001
"""

from locust import FastHttpUser, events, task

from labkit.capacity import locustlib, recording

latency = recording.RequestLatency()  # exact, CO-corrected histograms, merged across workers
latency.attach(events)


@events.init_command_line_parser.add_listener
def _options(parser):
    locustlib.add_ingest_arguments(parser)


class WebhookSender(FastHttpUser):
    """One sender posting a signed webhook every --send-interval seconds."""

    host = "http://127.0.0.1:8001"

    def on_start(self):
        self.source = locustlib.WebhookSource.from_environment(self.environment)
        self.timetable = locustlib.Timetable(float(locustlib.option(self.environment, "send_interval", 1.0)), on_late=latency.late)
        self.timetable.start()

    def wait_time(self):
        return self.timetable.wait()

    @task
    def send(self):
        locustlib.send_webhook(self.client, self.source)


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(WebhookSender)
