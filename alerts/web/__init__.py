"""Server-rendered HTML pages (forms with CSRF): subscribe with catalogue search,
confirm, manage, unsubscribe, a target's page and Atom feed, the items behind a digest's
"N more" link, the reader's "not relevant" feedback, and the development mailbox.
Every HTML route is here; the pages call the domain packages' services."""
