"""Users publishing events to the provider, which fans each out to S subscriptions.

The delivery lag (provider ``created_ns`` -> the receiver's record of it) is
reported as request type ``LAG``, name ``delivery``, in Locust's stats, web UI,
CSV and HTML report; precise HdrHistogram percentiles are logged at the end and
written beside the CSV files (``<csv prefix>_lag_hdr.json``)::

    export LABKIT_SECRET=$(python -c "from labkit.wire.signing import new_secret; print(new_secret())")
    labkit serve provider --port 8000 --db /tmp/labkit-provider.db --rate-limit 0 --allow-callback-host 127.0.0.1
    labkit serve receiver --port 8001 --secret "$LABKIT_SECRET" --db /tmp/labkit-receiver.db
    LABKIT_RECEIVER_DB=/tmp/labkit-receiver.db locust -f scenarios/publish_fanout.py --headless \\
        -u 10 -r 5 -t 10s --host http://127.0.0.1:8000 --subscriptions 3
"""

from locust import FastHttpUser, events, task

from labkit.capacity import locustlib, recording

latency = recording.RequestLatency()  # exact, CO-corrected histograms, merged across workers
latency.attach(events)

lag = locustlib.DeliveryLag()
lag.attach(events)


@events.init_command_line_parser.add_listener
def _options(parser):
    locustlib.add_fanout_arguments(parser)


class Publisher(FastHttpUser):
    """One publisher posting an event every --send-interval seconds."""

    host = "http://127.0.0.1:8000"

    def on_start(self):
        self.publisher = locustlib.Publisher.from_environment(self.environment)
        self.timetable = locustlib.Timetable(float(locustlib.option(self.environment, "send_interval", 1.0)), on_late=latency.late)
        self.timetable.start()

    def wait_time(self):
        return self.timetable.wait()

    @task
    def publish(self):
        locustlib.publish_event(self.client, self.publisher, lag)


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Publisher)
