# Rules of this stage.
