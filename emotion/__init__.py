"""FER2013 facial-emotion recognition built on the from-scratch ``minicnn`` framework."""
