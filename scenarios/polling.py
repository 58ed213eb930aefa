"""Pollers following the provider's change feed, paced at the poll interval.

Each user is one consumer: it asks ``GET /events?after=<cursor>`` with
``If-None-Match`` every ``--poll-interval`` seconds (a 304 costs the provider
no query), follows pages until caught up, and obeys ``Retry-After``.
``--long-poll-wait S`` turns on long polling. ``--audience per-consumer`` gives
each user its own consumer (c0, c1, ...) and that consumer's key, made from
``--consumer-key-secret`` (the provider's ``consumer_key_secret``): it polls its
own feed, as pollers of an account-scoped events API do, and its 304s and
empty polls are its own (``labkit capacity polling --audience per-consumer``
sets it all up). Run it against a provider::

    labkit serve provider --port 8000 --db /tmp/labkit-provider.db --rate-limit 0
    locust -f scenarios/polling.py --headless -u 10 -r 5 -t 10s --host http://127.0.0.1:8000
"""

from locust import FastHttpUser, events, task

from labkit.capacity import locustlib, recording

latency = recording.RequestLatency()  # exact, CO-corrected histograms, merged across workers
latency.attach(events)


@events.init_command_line_parser.add_listener
def _options(parser):
    locustlib.add_polling_arguments(parser)


class Poller(FastHttpUser):
    """One consumer polling the feed on a fixed period."""

    host = "http://127.0.0.1:8000"

    def on_start(self):
        self.feed = locustlib.Feed.from_environment(self.environment)
        self.timetable = locustlib.Timetable(float(locustlib.option(self.environment, "poll_interval", 1.0)), on_late=latency.late)
        self.timetable.start()

    def wait_time(self):
        return self.timetable.wait()

    @task
    def poll(self):
        locustlib.poll_feed(self.client, self.feed)


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Poller)
