"""The service's processes (`deepserve serve`): one supervisor that owns the listening socket and hands each
connection to a worker, the workers that serve them, and the channel between them.

    supervisor.py   accepts connections, gives each to the ready worker with the fewest open ones, restarts a worker
                    that dies, coordinates reloads across workers (prepare everywhere, then commit or abort)
    worker.py       one worker process: the app on uvicorn, fed connections by the supervisor instead of a socket
    channel.py      the messages between them (one SOCK_SEQPACKET socket pair per worker)
    protocol.py     uvicorn's HTTP protocol with timeouts for half-sent requests and a hook when a connection closes
"""
