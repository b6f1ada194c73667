"""`creditnode demo`: four regional nodes on 127.0.0.1 and a verified cross-region transfer — a product of its
own, apart from the protocol package. `scenario` drives the nodes through their public HTTP APIs;
`supervisor` owns their processes (start, watch, restart on their data, stop); `cli` is the command."""
