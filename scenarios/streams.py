"""Consumers holding Server-Sent Events streams on the provider; the lag of each delivered event.

Each user is one consumer holding ``GET /stream`` open (a gevent socket, the
response parsed by labkit's HTTP core, the body by its one SSE decoder). Every event read is fired into Locust's stats as
request type ``LAG``, name ``stream``: the provider's ``created_ns`` to the
moment the frame was read. A stream that ends or stays silent past
``--stall-after`` seconds counts as a failure and resumes after its last id.
``labkit capacity streams`` publishes events in the background at a fixed rate
and steps the number of held streams up to find how many one provider process
serves within a delivery-lag SLO::

    labkit capacity streams --max-users 500 --duration 60 --slo-p99-ms 1000

or by hand against a provider::

    labkit serve provider --port 8000 --db /tmp/labkit-provider.db --rate-limit 0
    locust -f scenarios/streams.py --headless -u 50 -r 25 -t 30s --host http://127.0.0.1:8000
"""

import gevent
from locust import User, constant, events, task

from labkit.capacity import recording, streamlib

latency = recording.RequestLatency()  # exact histograms of the LAG samples, merged across workers
latency.attach(events)


@events.init_command_line_parser.add_listener
def _options(parser):
    streamlib.add_stream_arguments(parser)


class StreamConsumer(User):
    """One consumer holding one SSE stream for as long as the user lives."""

    host = "http://127.0.0.1:8000"
    wait_time = constant(0)

    def on_start(self):
        opts = self.environment.parsed_options
        fire_event = self.environment.events.request.fire

        def fire(request_type, name, response_time, response_length, exception):
            fire_event(
                request_type=request_type,
                name=name,
                response_time=response_time,
                response_length=response_length,
                exception=exception,
                context={},
            )

        self.stream = streamlib.HeldStream(
            self.host,
            getattr(opts, "api_key", None) or streamlib.DEFAULT_API_KEY,
            str(getattr(opts, "start_cursor", None) or "0"),
            streamlib.stall_after_s(opts),
            fire,
        )

    @task
    def hold(self):
        self.stream.hold(gevent.sleep)

    def on_stop(self):
        self.stream.close()


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(StreamConsumer)
